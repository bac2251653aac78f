"""The VisDrone-DET category table, shared by the synthetic generator and the converter.

VisDrone-DET annotation rows are `left,top,width,height,score,category,truncation,occlusion`.
Category 0 marks "ignored regions" (crowds too dense to annotate), 1-10 are the object classes
below and 11 is "others" (objects outside the ten classes). The YOLO class id of category c
(1..10) is c - 1, so the ten training classes are contiguous and 0 and 11 never become ids.
"""

from __future__ import annotations

IGNORED_REGION = 0
OTHERS = 11

# VisDrone category id -> name, for the ten training classes (YOLO id = category - 1).
CATEGORY_NAMES: dict[int, str] = {
    1: "pedestrian",
    2: "people",
    3: "bicycle",
    4: "car",
    5: "van",
    6: "truck",
    7: "tricycle",
    8: "awning-tricycle",
    9: "bus",
    10: "motor",
}
NAMES: dict[int, str] = {category - 1: name for category, name in CATEGORY_NAMES.items()}
CATEGORY_BY_NAME: dict[str, int] = {name: category for category, name in CATEGORY_NAMES.items()}
CATEGORY_BY_NAME["others"] = OTHERS
