"""A moderator clears a queue of 20 demo listings in a real browser, with the
keyboard alone (Playwright driving Debian's Chromium, headless)."""

import re
from pathlib import Path

import pytest
from django.conf import settings

from listings.models import Listing, ListingDecision
from listings.tests.factories import moderator

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(settings.BASE_DIR) / "screenshots"
NAVIGATION_TIMEOUT_MS = 90_000
# What the moderator does with each planted flaw: reject with reason key N.
REJECT_KEY = {"wrong_category": "2", "wrong_colour": "1", "something_else": "1"}


@pytest.fixture
def demo_queue(transactional_db, sync_queue, use_model, bundled_model_dir):
    """20 demo listings with planted flaws, scored by the bundled model with its
    own thresholds: each lands in the queue with real evidence."""
    from listings.demo import demo_seed

    use_model(bundled_model_dir)
    seeded = demo_seed(count=20, mismatch_rate=1.0, seed=5, size=128)
    queued = Listing.objects.filter(status__in=["review", "held"]).count()
    assert queued == 20, f"only {queued} of 20 demo listings were flagged"
    return {item.listing_id: item.kind for item in seeded}


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see README).")
    return CHROMIUM


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def current_listing(page) -> int | None:
    holder = page.query_selector("[data-listing]")
    return int(holder.get_attribute("data-listing")) if holder else None


@pytest.mark.slow
def test_a_moderator_clears_20_demo_listings_with_the_keyboard_alone(
    live_server, demo_queue, chromium
):
    from playwright.sync_api import sync_playwright

    user = moderator("alice")
    user.set_password("s3cret-pass")
    user.save()
    # No database access while the browser is open: Playwright's sync API runs an
    # event loop in this thread, and Django would open (and leak) another
    # connection for that context. The checks come after.
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        plan = work_the_queue(page, live_server.url, demo_queue)
        browser.close()

    undo = ListingDecision.objects.get(reason_code="undo")
    assert (undo.actor, undo.from_status, undo.undoes.to_status) == (
        user,
        "rejected",
        "rejected",
    )
    assert undo.to_status == undo.undoes.from_status
    decisions = ListingDecision.objects.filter(actor=user).exclude(
        pk__in=[undo.pk, undo.undoes_id]
    )
    made = {
        d.listing_id: d.to_status
        + (f":{d.reason_code}" if d.to_status == "rejected" else "")
        for d in decisions
    }
    assert made == plan
    assert decisions.get(reason_code="other").reason == (
        "Photo is a screenshot of another shop."
    )
    assert decisions.get(reason_code="escalated").reason == "Is this a replica?"
    statuses = dict(Listing.objects.values_list("pk", "status"))
    assert {statuses[pk] for pk, p in plan.items() if p == "escalated"} == {"escalated"}


def work_the_queue(page, url: str, demo_queue: dict[int, str]) -> dict[int, str]:
    """Log in and clear the queue with the keyboard; what was decided, by id."""
    page.goto(f"{url}/review/")
    assert "/admin/login/" in page.url
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("s3cret-pass")
    navigate_by(page, "Enter")
    assert page.url.endswith("/review/")
    assert page.locator("tbody tr").count() == 20
    assert page.locator("#waiting").inner_text() == "20 waiting for you."
    shot(page, "queue")
    fits_a_phone_and_the_dark(page, "queue")

    navigate_by(page, "Enter")  # start reviewing
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    shot(page, "keys")
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()

    plan: dict[int, str] = {}
    opened_on: dict[int, int] = {}
    undone: dict[int, str] = {}
    for step in range(20):
        listing_id = current_listing(page)
        assert listing_id in demo_queue, f"step {step}: not on an item ({page.url})"
        assert listing_id not in plan, f"listing {listing_id} came back"
        images = page.locator(".stage img")
        kind = demo_queue[listing_id]
        # The demo plants "something else" in the second photo: the page opens there.
        worst = 1 if kind == "something_else" else 0
        assert images.nth(worst).is_visible(), f"step {step}: not on the worst image"
        if images.count() > 1:
            opened_on[listing_id] = worst
            assert "mismatch" in page.locator(".thumbs .current").inner_text()
            page.keyboard.press("j")
            assert images.nth(1 - worst).is_visible()
            assert not images.nth(worst).is_visible()
            page.keyboard.press("k")
            assert images.nth(worst).is_visible()
        if step == 0:
            shot(page, "item")
            fits_a_phone_and_the_dark(page, "item")
            panel = page.locator("#seller-panel")
            assert "demo-seller" in panel.inner_text()
            assert panel.locator(".others li").count() == 8
            panel.screenshot(path=str(SCREENSHOTS / "seller-panel.png"))
        if step == 1:
            look_closer(page)
        if step in (3, 11):
            plan[listing_id] = "approved"
            navigate_by(page, "a")
        elif step == 7:
            plan[listing_id] = "escalated"
            page.keyboard.press("e")  # an escalation wants a note: focus moves there
            assert "needs a note" in page.locator("#hint").inner_text()
            page.keyboard.type("Is this a replica?")
            navigate_by(page, "Enter")
        elif step == 9:
            plan[listing_id] = "rejected:other"
            open_reject_panel(page)
            page.keyboard.press("5")  # "other" wants a note: focus moves there
            page.keyboard.type("Photo is a screenshot of another shop.")
            navigate_by(page, "Enter")
        else:
            key = REJECT_KEY[kind]
            plan[listing_id] = "rejected:" + (
                "wrong_category" if key == "2" else "wrong_image"
            )
            open_reject_panel(page)
            navigate_by(page, key)
        message = page.locator(".messages .success")
        assert message.count() == 1, f"step {step}: {page.content()[:400]}"
        if step == 5:
            # Second thoughts: take the rejection back from the next page, approve.
            assert page.locator("#undo").is_visible()
            navigate_by(page, "u")
            assert current_listing(page) == listing_id
            assert "Undone" in page.locator(".messages .success").inner_text()
            shot(page, "undone")
            undone[listing_id] = plan[listing_id]
            plan[listing_id] = "approved"
            navigate_by(page, "a")

    assert current_listing(page) is None
    assert page.locator("#empty").is_visible()
    assert "The queue is empty" in page.locator(".messages").inner_text()

    page.keyboard.press("d")
    page.wait_for_url(re.compile(r"/review/dashboard/$"))
    # The escalated one waits for a senior moderator.
    assert page.locator("#queue-length .n").inner_text() == "1"
    assert page.locator("#claimed-now .n").inner_text() == "0"
    assert page.locator("svg.chart").count() == 2
    shot(page, "dashboard")
    fits_a_phone_and_the_dark(page, "dashboard")
    assert len(opened_on) >= 3, "too few multi-image items to tell"
    assert len(undone) == 1
    return plan


def open_reject_panel(page) -> None:
    """`r` opens the reject panel. On a loaded machine the key was seen lost, once in
    several runs, with nothing on the page to say why (the panel closed, the focus on
    the body, no dialog open): it is pressed again then, and said on the output, so
    that a lost key stays visible without failing the run."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.keyboard.press("r")
    try:
        page.wait_for_selector("#reject-panel.open", timeout=10_000)
    except PlaywrightTimeout:
        print(f"the r key was lost on {page.url}: pressed again")
        page.keyboard.press("r")
        page.wait_for_selector("#reject-panel.open", timeout=10_000)


def navigate_by(page, key: str) -> None:
    """Press `key` and wait for the page it leads to. A loaded CI machine can be slow,
    so the wait is long; if it still runs out, the error says where the page was, what
    had the focus and whether the reject panel was open, with a screenshot beside the
    others, so that a failure on a machine nobody watched can be read afterwards."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        with page.expect_navigation(timeout=NAVIGATION_TIMEOUT_MS):
            page.keyboard.press(key)
    except PlaywrightTimeout:
        shot(page, "navigation-timeout")
        state = page.evaluate(
            """() => ({
                panel: (document.getElementById("reject-panel") || {}).className,
                focus: document.activeElement
                    && document.activeElement.outerHTML.slice(0, 160),
                hint: (document.getElementById("hint") || {}).textContent,
                dialogs: [...document.querySelectorAll("dialog[open]")].map(d => d.id),
            })"""
        )
        raise AssertionError(
            f"pressing {key!r} on {page.url} led nowhere in "
            f"{NAVIGATION_TIMEOUT_MS / 1000:.0f} s: {state}"
        ) from None


def fits_a_phone_and_the_dark(page, name: str) -> None:
    """No sideways scrolling at the desktop's width nor at a phone's 390 px; a
    screenshot of each, and of the page in dark mode."""
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 844})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide in a {width} px window"
    shot(page, f"{name}-390")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", f"{name} is not dark: {background}"
    # Chart labels take the page's text colour, not a light theme's dark grey.
    label_colours = page.evaluate(
        """() => [...document.querySelectorAll("svg.chart text")].map(
            t => getComputedStyle(t).fill)"""
    )
    text_colour = page.evaluate("getComputedStyle(document.body).color")
    threshold_lines = {"rgb(207, 34, 46)", "rgb(26, 127, 55)"}  # plots.LINE_COLOURS
    assert set(label_colours) <= {text_colour} | threshold_lines, (
        f"{name}: chart labels {label_colours}"
    )
    if label_colours:
        assert text_colour in label_colours
    shot(page, f"{name}-dark")
    page.emulate_media(color_scheme="light")


def look_closer(page) -> None:
    """The zoom shows the photo at its natural size, scales it up and pans."""
    page.keyboard.press("z")
    zoom = page.locator("#zoom")
    assert zoom.is_visible()
    from playwright.sync_api import expect

    # Written when the full-size copy has loaded: wait for it.
    expect(page.locator("#zoom-size")).to_have_text("128 × 128 px at natural size")
    assert page.evaluate("document.activeElement.id") == "zoom-pan"
    for _ in range(5):  # up to 16× at most
        page.keyboard.press("+")
    assert page.locator("#zoom-size").inner_text() == "128 × 128 px shown at 16×"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.getElementById('zoom-pan').scrollLeft") == 60
    assert page.evaluate("document.getElementById('zoom-pan').scrollTop") == 60
    shot(page, "zoom")
    page.keyboard.press("Escape")
    assert not zoom.is_visible()
    assert "128 × 128 px" in page.locator("#caption").inner_text()
