"""The layouts ``synth export RUN DEST --format F`` writes: one small writer per target tool.

``segsynth.rundir.export_run`` reads and checks the run (privacy gate, finished steps, the
destination rule of ``segsynth.folders``) and hands a ready ``ExportJob`` to the writer of the
chosen format. A writer only lays files out; every file goes through ``segsynth.files``, and
every format carries the dataset card (``README.md``), ``manifest.csv`` (one row per case: its
files in this layout with their SHA-256, the seeds that made it, the checkpoints' hashes),
``recipe.yaml`` and ``metrics.json``.

=============  ==============================================================================
``folder``     ``masks/``, ``images/`` (masks 0/255): what ``synth export`` always wrote
``nnunet``     an nnU-Net v2 raw data set: ``imagesTr/{case}_0000.png``,
               ``labelsTr/{case}.png`` (labels 0/1), ``dataset.json``
``imagefolder`` Hugging Face ImageFolder: ``train/images``, ``train/masks`` (0/1) and
               ``train/metadata.csv`` linking them (``file_name``, ``mask_file_name``)
``monai``      ``images/``, ``labels/`` (0/1) and ``datalist.json`` (``{"training": [...]}``,
               paths relative to it) for ``monai.data.load_decathlon_datalist``
=============  ==============================================================================

With ``--with-real`` the real training pairs join the synthetic ones as cases named
``real_NNNNN``, marked ``source=real`` in the manifest (and in ``metadata.csv``,
``datalist.json`` and ``dataset.json``), and the card says loudly that the folder now holds
real patients' images.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from segsynth import __version__
from segsynth.errors import UserError
from segsynth import folders
from segsynth.files import atomic_write_bytes, atomic_write_dict_rows, atomic_write_text, copy_file
from segsynth.imageio import mask_png_bytes, png_bytes
from segsynth.labels import LabelTable

SYNTHETIC = "synthetic"
REAL = "real"
REAL_PREFIX = "real_"
LABELS = {"background": 0, "foreground": 1}
MANIFEST = folders.MANIFEST  # written by folders.write_manifest, as every folder of pairs
CARD = "README.md"
RECIPE = "recipe.yaml"
METRICS = folders.METRICS
COMMON_ENTRIES = (MANIFEST, CARD, RECIPE, METRICS)


@dataclass
class Case:
    """One (image, mask) pair to export: a synthetic pair's files or a real pair's tensors.

    ``columns`` are the manifest columns that travel with it (the run's seeds and checkpoint
    hashes for a synthetic pair, the data set's id for a real one).
    """

    id: str
    source: str
    image: Path | torch.Tensor
    mask: Path | torch.Tensor
    columns: dict[str, Any] = field(default_factory=dict)
    labels: LabelTable | None = None  # a tensor mask of K classes is written as an index PNG

    def image_png(self) -> bytes:
        """The image as 8-bit PNG bytes (a synthetic image exactly as the run wrote it)."""
        return _read(self.image) if isinstance(self.image, Path) else png_bytes(self.image)

    def mask_png(self) -> bytes:
        """The mask as 8-bit PNG bytes with values 0/255 (as the run writes masks)."""
        return _read(self.mask) if isinstance(self.mask, Path) else mask_png_bytes(self.mask, self.labels)

    def label_png(self) -> bytes:
        """The mask as a one-channel label map: 0 (background) and 1 (foreground), or for
        label maps of K classes their class indices 0..K."""
        with Image.open(io.BytesIO(self.mask_png())) as img:
            classes = np.asarray(img) if img.mode == "P" else (np.asarray(img.convert("L")) >= 128)
        buffer = io.BytesIO()
        Image.fromarray(classes.astype(np.uint8), mode="L").save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass
class ExportJob:
    """Everything a format writer needs, read and checked before the destination is touched.

    ``card`` renders the dataset card given the format's "Files" section (Markdown);
    ``image_channels`` and ``mask_channels`` are those of the files as published.
    """

    dest: Path
    cases: list[Case]
    image_channels: int
    mask_channels: int
    recipe_file: Path
    metrics_file: Path
    card: Callable[[str | None], str]
    name: str
    license: str | None = None

    @property
    def real_count(self) -> int:
        return sum(case.source == REAL for case in self.cases)


@dataclass(frozen=True)
class ExportFormat:
    """A layout: its writer, the top-level names it writes (for ``--force``) and what it needs."""

    name: str
    description: str
    entries: tuple[str, ...]
    write: Callable[[ExportJob], None]
    label_maps: bool = False  # masks become one-channel 0/1 label maps (needs one-channel masks)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"could not read {path} ({exc.strerror or exc}); the run folder is incomplete or "
            "unreadable: fix its permissions or finish the run with `synth resume RUN_DIR`."
        ) from exc


def _write(path: Path, data: bytes) -> str:
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


_FILE_COLUMNS = ("id", "source", "image", "mask", "image_sha256", "mask_sha256")


def _manifest_row(case: Case, image: str, mask: str, image_sha: str, mask_sha: str) -> dict[str, Any]:
    """One manifest row of the non-``folder`` formats: this layout's files, then the case's columns."""
    kept = {k: v for k, v in case.columns.items() if k not in _FILE_COLUMNS}
    return {"id": case.id, "source": case.source, "image": image, "mask": mask,
            "image_sha256": image_sha, "mask_sha256": mask_sha, **kept}


def _write_common(job: ExportJob, rows: list[dict[str, Any]], files: str | None) -> None:
    """The manifest, recipe, metrics and dataset card every format carries.

    ``files`` is the card's "Files" section for this layout (``None``: the ``folder`` one).
    """
    columns: dict[str, None] = {}
    for row in rows:  # every column any row has, in first-seen order (real rows lack seeds)
        columns.update(dict.fromkeys(row))
    folders.write_manifest(job.dest, [{k: row.get(k, "") for k in columns} for row in rows])
    copy_file(job.recipe_file, job.dest / RECIPE)
    copy_file(job.metrics_file, job.dest / METRICS)
    atomic_write_text(job.dest / CARD, job.card(files))


def _common_files(mask_values: str) -> str:
    return (f"- `{MANIFEST}`: one row per case: its files, `source` (synthetic or real), the seeds "
            f"that made it, the SHA-256 of each file and of the checkpoints that made it.\n"
            f"- `{RECIPE}`: the exact recipe (every default filled in); `{METRICS}`: all "
            f"measurements.\n- Masks hold {mask_values}.")


# ---------------------------------------------------------------------- folder
def write_folder(job: ExportJob) -> None:
    """``masks/``, ``images/`` and the run's own manifest columns: the original export."""
    rows = []
    for case in job.cases:
        row = dict(case.columns)
        if case.source == REAL:
            mask, image = folders.pair_files(case.id)
            row.update(id=case.id, mask=mask, image=image)
        row["mask_sha256"] = _write(job.dest / row["mask"], case.mask_png())
        row["image_sha256"] = _write(job.dest / row["image"], case.image_png())
        if job.real_count:
            row["source"] = case.source
        rows.append(row)
    _write_common(job, rows, None)


# ---------------------------------------------------------------------- nnU-Net v2
def channel_names(channels: int) -> dict[str, str]:
    """nnU-Net's ``channel_names`` for a PNG image (NaturalImage2DIO reads RGB from one file).

    The names only choose the normalisation: anything but ``CT`` and a few reserved names means
    per-channel z-scoring, what nnU-Net's own RGB PNG data sets use.
    """
    if channels == 3:
        return {"0": "R", "1": "G", "2": "B"}
    return {"0": "grey"}


def write_nnunet(job: ExportJob) -> None:
    """An nnU-Net v2 raw data set: ``imagesTr/{case}_0000.png``, ``labelsTr/{case}.png``, ``dataset.json``."""
    rows = []
    for case in job.cases:
        image, label = f"imagesTr/{case.id}_0000.png", f"labelsTr/{case.id}.png"
        rows.append(_manifest_row(case, image, label, _write(job.dest / image, case.image_png()),
                                  _write(job.dest / label, case.label_png())))
    dataset = {
        "channel_names": channel_names(job.image_channels),
        "labels": dict(LABELS),
        "numTraining": len(job.cases),
        "file_ending": ".png",
        "name": job.name,
        "description": f"Synthetic (mask, image) pairs made by segsynth {__version__}"
                       + (f", with {job.real_count} real training pairs (cases {REAL_PREFIX}*)"
                          if job.real_count else "") + "; see README.md.",
        "reference": "segsynth",
        "licence": job.license or "unspecified",
        "release": __version__,
        "segsynth_sources": {
            SYNTHETIC: [c.id for c in job.cases if c.source == SYNTHETIC],
            REAL: [c.id for c in job.cases if c.source == REAL],
        },
    }
    atomic_write_text(job.dest / "dataset.json", json.dumps(dataset, indent=2) + "\n")
    files = ("- `imagesTr/{case}_0000.png`: the images (the one channel file of each case; RGB "
             "images hold all three channels, as nnU-Net's NaturalImage2DIO reads them).\n"
             "- `labelsTr/{case}.png`: the segmentation of each case.\n"
             "- `dataset.json`: `channel_names`, `labels`, `numTraining`, `file_ending`, and "
             "`segsynth_sources` (which cases are synthetic, which real).\n"
             "- To train, put the folder in `$nnUNet_raw` as `DatasetNNN_Name` and run "
             "`nnUNetv2_plan_and_preprocess -d NNN --verify_dataset_integrity`.\n"
             + _common_files("0 (background) and 1 (foreground), as nnU-Net expects"))
    _write_common(job, rows, files)


# ---------------------------------------------------------------------- Hugging Face ImageFolder
IMAGEFOLDER_SPLIT = "train"


def write_imagefolder(job: ExportJob) -> None:
    """``train/images``, ``train/masks`` and ``train/metadata.csv``: Hugging Face ImageFolder.

    ``file_name`` names each image and ``mask_file_name`` its mask, relative to the metadata
    file; recent ``datasets`` versions load every ``*_file_name`` column as an image, older
    ones keep it as the mask's path.
    """
    split = job.dest / IMAGEFOLDER_SPLIT
    rows, metadata = [], []
    for case in job.cases:
        image, mask = f"images/{case.id}.png", f"masks/{case.id}.png"
        image_sha = _write(split / image, case.image_png())
        mask_sha = _write(split / mask, case.label_png())
        metadata.append({"file_name": image, "mask_file_name": mask, "id": case.id, "source": case.source})
        rows.append(_manifest_row(case, f"{IMAGEFOLDER_SPLIT}/{image}", f"{IMAGEFOLDER_SPLIT}/{mask}",
                                  image_sha, mask_sha))
    atomic_write_dict_rows(split / "metadata.csv", metadata)
    files = ("- `train/images/*.png`, `train/masks/*.png`: the pairs.\n"
             "- `train/metadata.csv`: `file_name` (the image), `mask_file_name` (its mask), `id`, "
             "`source`; load with `datasets.load_dataset(\"imagefolder\", data_dir=\"THIS_FOLDER\")`.\n"
             + _common_files("0 (background) and 1 (foreground): class indices, as segmentation "
                             "models expect (multiply by 255 to view them)"))
    _write_common(job, rows, files)


# ---------------------------------------------------------------------- MONAI
MONAI_DATALIST = "datalist.json"


def write_monai(job: ExportJob) -> None:
    """``images/``, ``labels/`` and ``datalist.json`` as ``monai.data.load_decathlon_datalist`` reads."""
    rows, training = [], []
    for case in job.cases:
        image, label = f"images/{case.id}.png", f"labels/{case.id}.png"
        rows.append(_manifest_row(case, image, label, _write(job.dest / image, case.image_png()),
                                  _write(job.dest / label, case.label_png())))
        training.append({"image": image, "label": label, "id": case.id, "source": case.source})
    datalist = {
        "name": job.name,
        "description": f"Synthetic (mask, image) pairs made by segsynth {__version__}; see README.md.",
        "labels": {str(v): k for k, v in LABELS.items()},
        "numTraining": len(training),
        "training": training,
    }
    atomic_write_text(job.dest / MONAI_DATALIST, json.dumps(datalist, indent=2) + "\n")
    files = ("- `images/*.png`, `labels/*.png`: the pairs.\n"
             "- `datalist.json`: `{\"training\": [{\"image\", \"label\", \"id\", \"source\"}, ...]}` "
             "with paths relative to the file; load with "
             "`monai.data.load_decathlon_datalist(\"datalist.json\", True, \"training\")`.\n"
             + _common_files("0 (background) and 1 (foreground)"))
    _write_common(job, rows, files)


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("folder", "masks/, images/ (0/255), manifest, card: the default",
                     ("masks", "images", *COMMON_ENTRIES), write_folder),
        ExportFormat("nnunet", "nnU-Net v2 raw data set (imagesTr, labelsTr 0/1, dataset.json)",
                     ("imagesTr", "labelsTr", "dataset.json", *COMMON_ENTRIES), write_nnunet, True),
        ExportFormat("imagefolder", "Hugging Face ImageFolder (train/, metadata.csv)",
                     (IMAGEFOLDER_SPLIT, *COMMON_ENTRIES), write_imagefolder, True),
        ExportFormat("monai", "MONAI datalist (images/, labels/ 0/1, datalist.json)",
                     ("images", "labels", MONAI_DATALIST, *COMMON_ENTRIES), write_monai, True),
    )
}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an unknown name is a ``UserError`` listing the known ones."""
    if name not in FORMATS:
        known = ", ".join(FORMATS)
        raise UserError(f"--format {name!r} is not an export format; choose one of {known} "
                        "(docs/export.md describes each).")
    return FORMATS[name]


def png_channels(path: Path) -> int:
    """How many channels the published PNG at ``path`` holds (1 greyscale, 3 RGB)."""
    try:
        with Image.open(path) as img:
            return len(img.getbands())
    except OSError as exc:
        raise UserError(f"cannot read picture {path} ({exc}); the run folder is incomplete: finish "
                        "it with `synth resume RUN_DIR`.") from exc


def check_format(fmt: ExportFormat, image_channels: int, mask_channels: int) -> None:
    """Refuse (exit 2) data a format cannot hold, before the destination is touched."""
    if fmt.label_maps and mask_channels != 1:
        raise UserError(
            f"--format {fmt.name} writes one-channel label maps (0 background, 1 foreground), but "
            f"this run's masks have {mask_channels} channels; export it with --format folder."
        )
    if image_channels not in (1, 3):
        raise UserError(f"--format {fmt.name} writes greyscale or RGB PNG images, but this run's "
                        f"images have {image_channels} channels; export it with --format folder.")


def real_cases(ids: Sequence[str], images: torch.Tensor, masks: torch.Tensor,
               labels: LabelTable | None = None) -> list[Case]:
    """The real training pairs as export cases ``real_00000, ...`` (their data-set id kept)."""
    return [
        Case(f"{REAL_PREFIX}{i:05d}", REAL, images[i], masks[i], {"real_id": sample_id}, labels)
        for i, sample_id in enumerate(ids)
    ]
