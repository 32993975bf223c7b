"""Forms of the review queue: its filters and a decision."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from clipmatch.models import ModelVersion
from listings.models import Category, Listing, ListingScore
from listings.selectors import review_queue_reasons
from listings.services.review import DECISIONS, ReviewFilters


class QueueFilterForm(forms.Form):
    category = forms.ModelChoiceField(
        Category.objects.all(), required=False, empty_label="All categories"
    )
    band = forms.ChoiceField(required=False)
    reason = forms.ChoiceField(required=False)
    model_version = forms.ModelChoiceField(
        ModelVersion.objects.all(), required=False, empty_label="All models"
    )
    seller = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Title, description or seller"}
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["band"].choices = [("", "All bands"), *ListingScore.Verdict.choices]
        self.fields["reason"].choices = [("", "All reasons"), *review_queue_reasons()]

    def seller_name(self) -> str:
        """The username of the seller the queue is narrowed to, if any."""
        if not (self.is_valid() and self.cleaned_data["seller"]):
            return ""
        user = get_user_model().objects.filter(pk=self.cleaned_data["seller"]).first()
        return user.get_username() if user else ""

    def filters(self) -> ReviewFilters:
        if not self.is_valid():
            return ReviewFilters()
        data = self.cleaned_data
        return ReviewFilters(
            category=data["category"].pk if data["category"] else None,
            band=data["band"],
            reason=data["reason"],
            model_version=data["model_version"].pk if data["model_version"] else None,
            seller=data["seller"],
            text=data["q"].strip(),
        )


class DecisionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in DECISIONS])
    reason_code = forms.CharField(required=False, max_length=40)
    note = forms.CharField(required=False, max_length=2000)
    message = forms.CharField(required=False, max_length=2000)
    expected_status = forms.ChoiceField(choices=Listing.Status.choices)
    expected_content_hash = forms.CharField(max_length=64)
