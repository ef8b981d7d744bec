"""Label maps with K classes: the class table, reading stored label files, one-hot channels, palettes.

Real segmentation sets are mostly multi-class (arteries and veins, nucleus interior and
boundary, organs). segsynth carries K exclusive classes through every stage as **K one-hot
foreground channels**: a pixel belongs to class ``k`` when channel ``k - 1`` is 1, and to the
background when every channel is 0. Binary masks are the special case K = 1 (one channel, as
always), so binary recipes see no change. Every component knows it has exclusive classes from
``DatasetInfo.labels`` (a :class:`LabelTable`; ``None`` for plain binary or independent
multi-label channels such as BBBC's overlapping boundary channel).

Why foreground channels and not K + 1 with an explicit background: the background is what is
left, so a K = 1 run is bit for bit the binary run it always was, and everything that works
per channel (mask statistics, Stage II conditioning, exports) works unchanged.

Storage, read by :func:`decode_label_file` and written by :func:`label_map_png`:

- **index** maps: one band of class values (8- or 16-bit PNG/TIFF, or a palette PNG whose
  palette *indices* are the values): ``classes: {background: 0, artery: 1, vein: 2}``;
- **colour-coded** RGB maps: ``classes: {background: [0, 0, 0], artery: [255, 0, 0], ...}``
  (a palette PNG is read through its palette then).

A stored value the table does not name is refused with the file, the value and the table, never
mapped to the background by a guess.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import Field, model_validator

from segsynth.errors import UserError
from segsynth.interfaces import Params

__all__ = [
    "BACKGROUND_COLOUR",
    "DEFAULT_COLOURS",
    "MAX_CLASSES",
    "Colour",
    "LabelTable",
    "class_index",
    "colourise",
    "decode_label_file",
    "exclusive",
    "label_map_png",
    "most_probable",
    "most_probable_class",
    "one_hot",
]

Colour = tuple[int, int, int]

#: Display colours of classes 1, 2, 3, ... where the recipe names none: distinct on screen and
#: for the common colour-vision deficiencies (Okabe-Ito); the background is black.
DEFAULT_COLOURS: tuple[Colour, ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66),
    (0, 114, 178), (213, 94, 0), (204, 121, 167), (255, 255, 255),
)
BACKGROUND_COLOUR: Colour = (0, 0, 0)
MAX_CLASSES = 64


class LabelTable(Params):
    """Recipe ``labels``: the classes of a label map, how each is stored, how each is drawn.

    ``classes`` maps each class name to its stored value: a whole number (index maps) or an
    ``[r, g, b]`` colour (colour-coded maps), all of one kind. The background is the class named
    ``background``, else the one stored as 0 / black. A plain mapping (``labels: {background: 0,
    artery: 1, vein: 2}``) is read as ``classes``. ``colours`` optionally sets display colours.
    """

    classes: dict[str, int | tuple[int, int, int]] = Field(
        description="Class name -> stored value: a whole number 0..65535 (index label maps, also "
        "palette PNGs by index) or an [r, g, b] colour (colour-coded PNGs). One class is the "
        "background: the one named 'background', else the one stored as 0 or [0, 0, 0].",
    )
    colours: dict[str, tuple[int, int, int]] = Field(
        default_factory=dict,
        description="Optional display colour [r, g, b] per class name, for reports and the "
        "palette of written label maps (default: a colour-blind-safe palette, background black).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "classes" not in data:
            return {"classes": dict(data)}
        return data

    @model_validator(mode="after")
    def _check(self) -> LabelTable:
        names = list(self.classes)
        if not 2 <= len(names) <= MAX_CLASSES + 1:
            raise ValueError(
                f"labels needs a background and 1 to {MAX_CLASSES} more classes, got {len(names)} "
                f"({names}); e.g. {{background: 0, vessel: 1}}"
            )
        kinds = {isinstance(v, int) for v in self.classes.values()}
        if len(kinds) > 1:
            raise ValueError(
                "labels mixes whole numbers and [r, g, b] colours; a label map stores either "
                f"class numbers or colours, so give every class the same kind of value ({self.classes})"
            )
        for name, value in self.classes.items():
            values = (value,) if isinstance(value, int) else value
            top = 65535 if isinstance(value, int) else 255
            if any(not 0 <= v <= top for v in values):
                raise ValueError(f"labels: class {name!r} has the value {value}, outside 0..{top}")
        seen: dict[Any, str] = {}
        for name, value in self.classes.items():
            if value in seen:
                raise ValueError(f"labels: classes {seen[value]!r} and {name!r} share the value {value}")
            seen[value] = name
        self._background_name()
        unknown = sorted(set(self.colours) - set(names))
        if unknown:
            raise ValueError(f"labels.colours names {unknown}, which are not classes ({names})")
        for name, colour in self.colours.items():
            if any(not 0 <= c <= 255 for c in colour):
                raise ValueError(f"labels.colours: {name!r} has {list(colour)}; use 0..255 per channel")
        return self

    def _background_name(self) -> str:
        if "background" in self.classes:
            return "background"
        zero = [n for n, v in self.classes.items() if v in (0, (0, 0, 0))]
        if not zero:
            raise ValueError(
                f"labels has no background: name one class 'background', or store it as 0 "
                f"(index maps) or [0, 0, 0] (colour maps); classes are {list(self.classes)}"
            )
        return zero[0]

    # ------------------------------------------------------------------ the table
    @property
    def background(self) -> str:
        """The name of the background class."""
        return self._background_name()

    @property
    def foreground(self) -> tuple[str, ...]:
        """The K foreground class names in the recipe's order: class ``k`` is channel ``k - 1``."""
        bg = self.background
        return tuple(n for n in self.classes if n != bg)

    @property
    def names(self) -> tuple[str, ...]:
        """All class names by class index: the background (0), then the foreground (1..K)."""
        return (self.background, *self.foreground)

    @property
    def k(self) -> int:
        """How many foreground classes (mask channels)."""
        return len(self.foreground)

    @property
    def storage(self) -> Literal["index", "colour"]:
        """How label files store the classes: class numbers or RGB colours."""
        return "index" if isinstance(next(iter(self.classes.values())), int) else "colour"

    def stored_values(self) -> list[int | Colour]:
        """The stored value of each class index 0..K."""
        return [self.classes[n] for n in self.names]

    def display_colours(self) -> list[Colour]:
        """The display colour of each class index 0..K (the recipe's, else stored colours, else
        the default palette)."""
        out: list[Colour] = []
        for index, name in enumerate(self.names):
            if name in self.colours:
                out.append(tuple(self.colours[name]))  # type: ignore[arg-type]
            elif self.storage == "colour":
                out.append(tuple(self.classes[name]))  # type: ignore[arg-type]
            elif index == 0:
                out.append(BACKGROUND_COLOUR)
            else:
                out.append(DEFAULT_COLOURS[(index - 1) % len(DEFAULT_COLOURS)])
        return out

    def describe(self) -> str:
        """One line for logs and cards: ``background=0, artery=1, vein=2``."""
        return ", ".join(f"{n}={_spell(self.classes[n])}" for n in self.names)

    def as_record(self) -> dict[str, Any]:
        """The table as JSON for manifests, dataset cards and exported models."""
        colours = self.display_colours()
        return {
            "classes": [
                {"index": i, "name": n, "stored": _json_value(self.classes[n]), "colour": list(colours[i])}
                for i, n in enumerate(self.names)
            ],
            "storage": self.storage,
            "channels": "one-hot foreground channels: class k is channel k-1; none set is background",
        }

    @classmethod
    def of(cls, names: Sequence[str], colours: Mapping[str, Colour] | None = None) -> LabelTable:
        """An index table for ``names`` (background first) stored as 0, 1, 2, ...: what an
        adapter that makes its own classes (a phantom, a derived scheme) describes them with."""
        return cls(classes={n: i for i, n in enumerate(names)}, colours=dict(colours or {}))


def _spell(value: int | Colour) -> str:
    return str(value) if isinstance(value, int) else "[" + ", ".join(map(str, value)) + "]"


def _json_value(value: int | Colour) -> int | list[int]:
    return value if isinstance(value, int) else list(value)


# --------------------------------------------------------------------------- reading
def decode_label_file(data: bytes, name: str, table: LabelTable, *, max_pixels: int | None = None) -> np.ndarray:
    """Class indices ``(H, W)`` uint8 (0 = background, 1..K) of one stored label map.

    Index tables read one band of raw values (8/16-bit greyscale, palette indices, or an RGB
    file whose three channels are equal); colour tables read RGB (palettes through their
    colours). A value the table does not name is a ``UserError`` naming ``name``, the value,
    how many pixels hold it, and the table.
    """
    from segsynth.images import DEFAULT_MAX_PIXELS, label_codes

    codes, shown = label_codes(data, name, table.storage == "colour",
                               max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    keys = [_key(v) for v in table.stored_values()]
    found, inverse = np.unique(codes, return_inverse=True)
    lookup = np.full(found.shape, -1, dtype=np.int64)
    for index, key in enumerate(keys):
        lookup[found == key] = index
    unknown = found[lookup < 0]
    if unknown.size:
        counts = [(int((codes == u).sum()), u) for u in unknown[:5]]
        listed = ", ".join(f"{shown(int(u))} ({c} pixels)" for c, u in counts)
        more = f" and {unknown.size - 5} more" if unknown.size > 5 else ""
        raise UserError(
            f"label map {name} holds the value {listed}{more}, which the recipe's labels table "
            f"({table.describe()}) names as no class. Add the class to data.params.labels, or fix "
            "the file (a JPEG-saved or resized label map blends neighbouring values: save label "
            "maps as PNG or TIFF and resize them with nearest-neighbour only)."
        )
    return lookup[inverse].reshape(codes.shape).astype(np.uint8)


def _key(value: int | Colour) -> int:
    if isinstance(value, int):
        return value
    r, g, b = value
    return (r << 16) | (g << 8) | b


# --------------------------------------------------------------------------- channels
def one_hot(index: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
    """Float ``(..., K, H, W)`` foreground channels of class indices ``(..., H, W)`` (0 = background)."""
    index_t = torch.as_tensor(np.asarray(index) if isinstance(index, np.ndarray) else index).long()
    if index_t.numel() and int(index_t.max()) > k:
        raise ValueError(f"class index {int(index_t.max())} is above K = {k}")
    hot = torch.nn.functional.one_hot(index_t, k + 1)[..., 1:]  # (..., H, W, K)
    return hot.movedim(-1, -3).float()


def class_index(masks: torch.Tensor) -> torch.Tensor:
    """Class indices ``(..., H, W)`` (long) of one-hot channels ``(..., K, H, W)``.

    A pixel is background when no channel exceeds 0.5, else the class of its largest channel,
    so soft or slightly overlapping channels still give one class per pixel.
    """
    best, arg = masks.max(dim=-3)
    return torch.where(best > 0.5, arg + 1, torch.zeros_like(arg))


def most_probable_class(probabilities: torch.Tensor) -> torch.Tensor:
    """Class indices ``(..., H, W)`` (0 = background) of the K foreground classes' probabilities
    ``(..., K, H, W)``: the most probable of the K + 1 classes, the background's probability
    being what the others leave, ``1 - sum`` (a softmax's argmax, background included)."""
    background = 1.0 - probabilities.sum(dim=-3, keepdim=True)
    return torch.cat([background, probabilities], dim=-3).argmax(dim=-3)


def most_probable(probabilities: torch.Tensor) -> torch.Tensor:
    """One-hot ``(..., K, H, W)`` of each pixel's ``most_probable_class``."""
    index = most_probable_class(probabilities)
    return one_hot(index, probabilities.shape[-3]).to(probabilities.dtype).to(probabilities.device)


def exclusive(masks: torch.Tensor) -> torch.Tensor:
    """``masks`` made strictly one-hot (each pixel in at most one channel), same shape and dtype."""
    k = masks.shape[-3]
    return one_hot(class_index(masks), k).to(masks.dtype).to(masks.device)


# --------------------------------------------------------------------------- drawing and writing
def colourise(index: np.ndarray | torch.Tensor, colours: Sequence[Colour]) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` of class indices, class ``i`` drawn in ``colours[i]``."""
    lut = np.asarray(colours, dtype=np.uint8)
    return lut[np.asarray(index, dtype=np.int64)]


def label_map_png(index: np.ndarray | torch.Tensor, table: LabelTable, *, compress_level: int = 6) -> bytes:
    """An index PNG (palette mode) of class indices: pixel value = class index, palette = display
    colours, so a viewer shows colours and a script reads the classes with no table at hand."""
    array = np.asarray(index, dtype=np.uint8)
    img = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    palette: list[int] = []
    for colour in table.display_colours():
        palette.extend(colour)
    img.putpalette(palette + [0] * (768 - len(palette)))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
