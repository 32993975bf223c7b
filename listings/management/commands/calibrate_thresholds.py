"""Propose (and, for staff, apply) thresholds from moderators' decisions."""

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from clipmatch.inference.sources import ModelLoadError
from clipmatch.models import ThresholdVersion
from clipmatch.services import ModelVersionError, threshold_version_apply


class Command(BaseCommand):
    help = (
        "Propose pass/review/hold thresholds for the active model that reach a "
        "target precision on mismatches, globally and per category where there are "
        "enough decisions, with the figures they come from. Nothing changes until a "
        "staff user applies a proposal (--apply here, or the admin action)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--target-precision",
            type=float,
            default=0.9,
            help="Share of held listings that must be mismatches (default 0.9).",
        )
        parser.add_argument(
            "--pass-precision",
            type=float,
            default=0.98,
            help="Share of passed listings that must be matches (default 0.98).",
        )
        parser.add_argument("--min-decisions", type=int, default=30)
        parser.add_argument(
            "--holdout",
            type=float,
            default=0.3,
            help="Newest share of decisions kept aside to check the proposal.",
        )
        parser.add_argument(
            "--apply",
            type=int,
            metavar="PROPOSAL_ID",
            help="Apply an existing proposal instead of proposing.",
        )
        parser.add_argument("--by", help="Staff username applying a proposal.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        if options["apply"] is not None:
            return self._apply(options)
        from listings.services.calibration import thresholds_propose_from_decisions
        from listings.services.exceptions import CalibrationError

        for name in ("target_precision", "pass_precision", "holdout"):
            if not 0 < options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be in (0, 1).")
        try:
            proposal = thresholds_propose_from_decisions(
                target=options["target_precision"],
                pass_target=options["pass_precision"],
                min_decisions=options["min_decisions"],
                holdout=options["holdout"],
            )
        except (CalibrationError, ModelLoadError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "proposal": proposal.pk,
                        "thresholds": proposal.thresholds,
                        "figures": proposal.figures,
                    }
                )
            )
            return
        figures = proposal.figures
        self.stdout.write(f"Proposal #{proposal.pk} for {proposal.model_version}:")
        self.stdout.write(json.dumps(proposal.thresholds, indent=2))
        for name, held in figures["held_out"]["hold"].items():
            if held.get("n"):
                self.stdout.write(
                    f"held-out {name}: {held['n']} listings, {held['held']} held, "
                    f"precision on mismatches {_pct(held['hold_precision'])}, "
                    f"recall {_pct(held['hold_recall'])}"
                )
        self.stdout.write(
            f"Apply with: manage.py calibrate_thresholds --apply {proposal.pk} "
            "--by STAFF_USER"
        )

    def _apply(self, options):
        proposal = ThresholdVersion.objects.filter(pk=options["apply"]).first()
        if proposal is None:
            raise CommandError(f"No threshold proposal #{options['apply']}.")
        if not options["by"]:
            raise CommandError("--apply needs --by STAFF_USER.")
        actor = get_user_model().objects.filter(username=options["by"]).first()
        if actor is None:
            raise CommandError(f"No user {options['by']!r}.")
        try:
            threshold_version_apply(proposal=proposal, actor=actor)
        except ModelVersionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Thresholds #{proposal.pk} apply to listings scored from now on; "
                "run manage.py rescore --stale to re-route the rest."
            )
        )


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"
