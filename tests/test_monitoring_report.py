"""The monitoring HTML report: a self-contained, well-formed page whose data text is escaped, and
the choice of the served images that show the drift.

Checks come from the real `drift_checks` over synthetic baseline and served rows, so the report
is tested on what the monitor produces; checks without a plot (embedding, quality, label size)
are built directly.
"""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_core.monitoring.checks import DRIFT_CHECK, Check
from yolo_core.monitoring.drift import drift_checks
from yolo_core.monitoring.image_drift import DRIFT_FEATURES
from yolo_core.monitoring.report import Example, most_drifted, write_html_report
from yolo_core.monitoring.report_plots import class_colour, draw_detections

EVIL = "<script>alert('$x')</script>"  # a `$` too: matplotlib would read it as mathtext
VOID = {"meta", "img", "br", "hr", "link", "input"}


class Page(HTMLParser):
    """The page's images and table rows, failing on a tag closed out of order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.rows: list[tuple[str | None, list[str]]] = []
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed tags {self.open}"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attributes)
        if tag == "tr":
            self.rows.append((attributes.get("class"), []))
        if tag == "td":
            self.rows[-1][1].append("")
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] == "td":
            self.rows[-1][1][-1] += data

    def images_of(self, kind: str) -> list[dict]:
        return [image for image in self.images if image.get("class") == kind]

    def check_rows(self) -> list[tuple[str, str]]:
        return [(kind, cells[0]) for kind, cells in self.rows if kind in ("violated", "passed")]


def rows(brightness: np.ndarray, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"file": f"{seed}-{i:05d}.jpg", "brightness": float(b), "contrast": float(rng.normal(40, 5)),
         "sharpness": float(rng.gamma(4, 100)), "width": 1920.0, "height": 1080.0, "boxes": 3}
        for i, b in enumerate(brightness)
    ]  # fmt: skip


def profile(rng: np.random.Generator, images: int, classes: dict[str, int]) -> dict:
    boxes = sum(classes.values())
    return {
        "version": 1,
        "kind": "prediction_profile",
        "image_count": images,
        "boxes_per_image": rng.poisson(boxes / images, images).tolist(),
        "confidence": rng.uniform(0.25, 1.0, boxes).round(3).tolist(),
        "sqrt_area": rng.gamma(5, 6, boxes).round(3).tolist(),
        "class_counts": classes,
        "sqrt_area_per_class": {},
    }


@pytest.fixture(scope="module")
def run() -> dict:
    """A baseline, a darker served window, both prediction profiles and the run's checks."""
    rng = np.random.default_rng(0)
    baseline = {"per_image": rows(rng.normal(120, 10, 400), seed=1)}
    served = rows(rng.normal(70, 10, 200), seed=2)
    reference_profile = profile(rng, 400, {"car": 900, "pedestrian": 300, EVIL: 50})
    served_profile = profile(rng, 200, {"car": 300, "pedestrian": 250, "bus": 10})
    checks = drift_checks(baseline, served, reference_profile, served_profile)
    checks += [unplotted("embedding.backbone", True), unplotted("quality.map50_95", False)]
    checks.append(unplotted("label_size.car", False))
    return {"baseline": baseline, "served": served, "reference": reference_profile,
            "served_profile": served_profile, "checks": checks}  # fmt: skip


def unplotted(feature: str, violated: bool) -> Check:
    return Check(
        feature, DRIFT_CHECK, "mmd", 0.5, 1e-4 if violated else 0.5, 0.01, 0.2 if violated else 0.0,
        "mmd2", 0.01, violated, f"{feature}: {'drift' if violated else 'no drift'}: mmd statistic 0.5",
    )  # fmt: skip


def example(caption: str = "brightness 31.2 (baseline median 118.0)", name: str = "car") -> Example:
    image = np.full((720, 960, 3), 128, np.uint8)
    return Example(image, [{"class_name": name, "score": 0.87, "box": [40, 40, 400, 300]}], caption)


def report(tmp_path: Path, run: dict, **changes) -> str:
    arguments = {
        "checks": run["checks"],
        "baseline": run["baseline"],
        "served_images": run["served"],
        "reference_profile": run["reference"],
        "served_profile": run["served_profile"],
        "examples": [example(), example(name="bus")],
        "summary": {"window": "2024-05-01T00 to 01", "records": 200, "images": 200, "model version": "7"},
    } | changes
    path = write_html_report(tmp_path / "out" / "report.html", **arguments)
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def full(run: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report with everything in it, rendered once for the tests that only read it."""
    return report(tmp_path_factory.mktemp("report"), run)


def decoded(image: dict) -> np.ndarray:
    header, payload = image["src"].split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)


def test_the_report_is_one_well_formed_page_with_every_plot_and_example(full):
    text = full
    page = Page(text)
    assert len(page.images_of("image-statistic")) == len(DRIFT_FEATURES)
    assert len(page.images_of("prediction")) == 4  # confidence, boxes per image, sizes, class mix
    assert len(page.images_of("example")) == 2
    assert all(decoded(image) is not None for image in page.images)  # every image is embedded
    assert "http" not in text and "<link" not in text and "<script" not in text  # self-contained
    assert "model version" in text and "2024-05-01T00 to 01" in text


def test_violated_checks_come_first_and_every_check_is_listed(full, run):
    listed = Page(full).check_rows()
    kinds = [kind for kind, _ in listed]
    assert kinds == sorted(kinds, key=lambda kind: kind != "violated")
    assert "violated" in kinds and "passed" in kinds
    assert sorted(feature for _, feature in listed) == sorted(c.feature_name for c in run["checks"])
    assert ("violated", "image.brightness") in listed and ("violated", "embedding.backbone") in listed
    assert ("passed", "label_size.car") in listed  # checks without a plot still appear in the table


def test_text_from_data_is_escaped(tmp_path, run):
    checks = [*run["checks"], unplotted(EVIL, True)]
    text = report(
        tmp_path, run, checks=checks, examples=[example(caption=EVIL, name=EVIL)], summary={EVIL: EVIL}
    )
    page = Page(text)
    assert "script" not in page.tags
    assert "<script" not in text and "&lt;script&gt;" in text
    assert ("violated", EVIL) in page.check_rows()  # the parser reads the name back as text


def test_the_report_works_without_profiles_or_examples(tmp_path, run):
    page = Page(report(tmp_path, run, reference_profile=None, served_profile=None, examples=[]))
    assert len(page.images_of("image-statistic")) == len(DRIFT_FEATURES)
    assert page.images_of("prediction") == [] and page.images_of("example") == []
    empty = Page(report(tmp_path, run, checks=[], served_images=[], examples=[]))
    assert len(empty.images_of("image-statistic")) == len(DRIFT_FEATURES)


def test_detections_are_drawn_in_the_class_colour_without_changing_the_input():
    image = np.full((200, 300, 3), 128, np.uint8)
    drawn = draw_detections(image, [{"class_name": "car", "score": 0.9, "box": [50, 60, 250, 180]}])
    assert tuple(int(v) for v in drawn[120, 50]) == class_colour("car")  # the left edge, mid-height
    assert tuple(int(v) for v in drawn[120, 150]) == (128, 128, 128)  # inside the box: untouched
    assert (image == 128).all()


def test_boxes_on_a_large_frame_are_scaled_with_it():
    image = np.full((1000, 2000, 3), 128, np.uint8)
    drawn = draw_detections(image, [{"class_name": "bus", "score": 0.5, "box": [1000, 400, 1800, 900]}], 500)
    assert drawn.shape == (250, 500, 3)
    assert tuple(int(v) for v in drawn[200, 250]) == class_colour("bus")  # x 1000 -> 250, y 800 -> 200


def test_the_embedded_example_shows_its_box(full):
    embedded = Page(full).images_of("example")[0]
    pixels = decoded(embedded).astype(int)
    assert pixels.shape == (720, 960, 3)
    assert np.abs(pixels[170, 40] - 128).sum() > 60  # the box's left edge, through JPEG
    assert np.abs(pixels[170, 220] - 128).sum() < 15  # inside the box


def test_most_drifted_picks_the_darkest_images_when_brightness_falls(run):
    assert any(c.violated and c.feature_name == "image.brightness" for c in run["checks"])
    served = run["served"]
    picked = most_drifted(
        served, run["baseline"], [c for c in run["checks"] if c.feature_name.startswith("image.")]
    )
    darkest = np.argsort([row["brightness"] for row in served], kind="stable")[:6]
    assert [index for index, _ in picked] == darkest.tolist()
    index, caption = picked[0]
    assert caption.startswith(f"brightness {served[index]['brightness']:.1f} (baseline median ")


def test_most_drifted_breaks_ties_by_index_and_needs_a_violated_image_check(run):
    served = [dict(row) for row in run["served"][:10]]
    for row in served:
        row["brightness"] = 20.0
    image_checks = [c for c in run["checks"] if c.feature_name.startswith("image.")]
    assert [index for index, _ in most_drifted(served, run["baseline"], image_checks, k=3)] == [0, 1, 2]
    unchanged = drift_checks(run["baseline"], run["baseline"]["per_image"][:200])
    assert not any(c.violated for c in unchanged)
    assert most_drifted(run["baseline"]["per_image"][:200], run["baseline"], unchanged) == []
    assert most_drifted(served, run["baseline"], [unplotted("embedding.backbone", True)]) == []
