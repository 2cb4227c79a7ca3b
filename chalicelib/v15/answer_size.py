"""infer_multiple's answer bounded by Lambda's 6 MB by design (issue 17 §1).

Each image's entry is what `infer` answers for it without pictures. Classification and
detection entries are small (100 detections on each of 100 images: 1.34 MB), but an instance
segmentation entry carries the instance map (a PNG of the whole image, base64) and every
instance's polygons in the original image's pixels. Measured through `make run`'s server
(bench/bench_answer_sizes.py): 100 images of 4000x3000 px with 10 instances each answered
6.34 MB, with 100 instances each 45 MB, both refused (502) as Lambda refuses them.

`bounded_images` keeps an answer over ANSWER_BUDGET within it: every entry starts without its
map and polygons; then the entries, in order, get their polygons back while they fit, then
their maps. An entry that still leaves something out has `instance_segmentation_base64_map`
null and/or empty `polygons`, and names what it left out in `omitted`; boxes, categories,
probabilities, colours and areas are always there, and `POST /infer` of that image alone (its
`path_to_image`) answers the rest in full. An answer that fits is the spec's, unchanged. With
the default 100 images the lightest entries (255 instances each at most, about 40 KB) always fit.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws_limits import LAMBDA_MAX_RESPONSE_BYTES

MAP = "instance_segmentation_base64_map"
INSTANCES = "instance_segmentations"
POLYGONS = "polygons"
# The body's bytes as they sit in the Lambda's proxy output (escaped once more as a string);
# the rest of the output (status, headers) is well under the margin.
ANSWER_BUDGET = LAMBDA_MAX_RESPONSE_BYTES - 256 * 1024


def in_proxy_output(value: Any) -> int:
    """Bytes `value` takes in the Lambda's proxy output: Chalice's compact JSON of it, escaped
    again as the `body` string (each quote and backslash twice)."""
    return len(json.dumps(json.dumps(value, separators=(",", ":")))) - 2


def _lighter(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The entry, then lighter forms of it: without the map, then without polygons too."""
    forms = [entry]
    if entry.get(MAP) is not None:
        forms.append({**entry, MAP: None, "omitted": [MAP]})
    instances = entry.get(INSTANCES)
    if isinstance(instances, list) and any(isinstance(i, dict) and i.get(POLYGONS) for i in instances):
        bare = [{**i, POLYGONS: []} if isinstance(i, dict) else i for i in instances]
        lighter = {**entry, INSTANCES: bare, "omitted": [POLYGONS]}
        if entry.get(MAP) is not None:
            lighter = {**lighter, MAP: None, "omitted": [MAP, POLYGONS]}
        forms.append(lighter)
    return forms


def bounded_images(images: list[dict[str, Any]], budget: int = ANSWER_BUDGET) -> list[dict[str, Any]]:
    """`images` (infer_multiple's entries, in order) in an answer of at most `budget` bytes of
    proxy output where their lightest forms allow it: polygons before maps, earlier entries first."""
    envelope = in_proxy_output({"result": "OK", "images": []})
    forms = [_lighter(entry) for entry in images]
    sizes = [[in_proxy_output(form) + 1 for form in entry_forms] for entry_forms in forms]  # + its comma
    if envelope + sum(s[0] for s in sizes) <= budget:
        return images
    room = budget - envelope - sum(s[-1] for s in sizes)
    level = [len(entry_forms) - 1 for entry_forms in forms]  # every entry at its lightest
    for allowed in ({MAP}, set()):  # polygons back first, for every entry in order; then maps
        for i, entry_forms in enumerate(forms):
            fitting = [k for k, form in enumerate(entry_forms) if set(form.get("omitted", ())) <= allowed]
            target = max(fitting)  # the lightest form leaving out nothing more than `allowed`
            extra = sizes[i][target] - sizes[i][level[i]]
            if target < level[i] and extra <= room:
                room -= extra
                level[i] = target
    return [entry_forms[k] for entry_forms, k in zip(forms, level, strict=True)]
