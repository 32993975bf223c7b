"""The model-version admin, with what only listings know: shadow scores on the catalog.

`clipmatch.admin` registers the model's own pages; this one adds the comparison on the
catalog's listings and takes the registration over, so clipmatch never reads listings.
"""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from clipmatch.admin import ModelVersionAdmin, metrics_table
from clipmatch.models import ModelVersion
from listings.labels import shadow_comparison


class ListingsModelVersionAdmin(ModelVersionAdmin):
    readonly_fields = [*ModelVersionAdmin.readonly_fields]
    readonly_fields.insert(readonly_fields.index("distribution") + 1, "shadow_figures")

    @admin.display(description="Shadow scores compared with the active ones")
    def shadow_figures(self, obj: ModelVersion) -> str:
        figures = shadow_comparison(candidate_id=obj.pk)
        if not figures["compared"]:
            return "-"
        verdicts = format_html_join(", ", "{}: {}", sorted(figures["verdicts"].items()))
        table = metrics_table(figures.get("labelled", {}))
        return format_html(
            "{} listings; verdicts (active->candidate) {}<br>{}",
            figures["compared"],
            verdicts,
            table,
        )


admin.site.unregister(ModelVersion)
admin.site.register(ModelVersion, ListingsModelVersionAdmin)
