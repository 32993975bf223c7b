"""The review queue's pages, under /review/."""

from django.urls import path

from listings import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("next/", views.next_item, name="next"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("<int:pk>/", views.item, name="item"),
    path("<int:pk>/decide/", views.decide, name="decide"),
    path("<int:pk>/skip/", views.skip, name="skip"),
    path("<int:pk>/renew/", views.renew, name="renew"),
    path("images/<int:pk>/", views.image, name="image"),
    path("undo/<int:decision_id>/", views.undo, name="undo"),
]
