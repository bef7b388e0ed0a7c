"""Real multi-view tables read from files that software packages install (R data packages of
Debian, scikit-learn): ``satellite``, ``dna_splice``, ``spambase``, ``german_credit``,
``hcs_cells``, ``wdbc``, ``letter``, ``vehicle``, ``pima_diabetes``.

Each dataset is one :class:`TableSpec` holding all its facts; from each, this module registers a
``robustfusion prepare NAME`` step and a dataset ``NAME``. ``prepare`` reads the package's file
(R's ``.rda`` with :mod:`robustfusion.data.media.rdata`, or scikit-learn's CSV), checks its row
count and class labels against the shipped split (``data/splits/<name>/``: ``train.txt``,
``val.txt``, ``test.txt`` row numbers, 0-based, in the file's row order, and ``labels.txt``, the
class of every row, built once by ``scripts/build_packaged_splits.py``), and writes
``<out>/<name>.npz`` in the generic format (:mod:`robustfusion.data.datasets.npz`: ``y``,
``split``, one float32 ``[N, D]`` array per modality). The dataset loads that file through the
``npz`` loader (every view standardised per feature on the training split), so
``--dataset NAME`` and ``--data <out>/<name>.npz`` give the same tensors; the dataset adds the
real class names and the provenance.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np

from robustfusion.atomic import save_npz
from robustfusion.data.base import DatasetInfo, DataSplits
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets import npz
from robustfusion.data.media.rdata import RFrame, read_data_frame, read_package_file
from robustfusion.data.stratify import stratified_holdout, stratified_split
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS, PREPARERS

#: Seed of every shipped split (stratified 60/20/20, or the validation hold-out).
SPLIT_SEED = 0
#: Share of an official training pool held out for validation.
VAL_FRACTION = 0.2
SPLIT_FILES = ("train", "val", "test")


@dataclass(frozen=True)
class Columns:
    """The columns of one modality: ``names`` in that order, then every column whose name ends in
    one of ``suffixes``; ``rest``: every feature column that no other modality takes."""

    names: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    rest: bool = False


@dataclass(frozen=True)
class View:
    """One modality of a table: its name, columns and what it measures."""

    name: str
    columns: Columns
    description: str


@dataclass(frozen=True)
class SplitRule:
    """How the shipped split was made (by ``scripts/build_packaged_splits.py``).

    ``kind``: ``stratified`` (60/20/20 of all rows), ``rows`` (the first ``train_rows`` rows are
    the official training pool, the rest the official test set) or ``column`` (``column`` equal to
    ``train_value``/``test_value``). With an official split, validation is a stratified
    :data:`VAL_FRACTION` of the training pool. ``note``: how the official split was established.
    """

    kind: str = "stratified"
    train_rows: int = 0
    column: str = ""
    train_value: str = ""
    test_value: str = ""
    note: str = ""


@dataclass(frozen=True)
class TableSpec:
    """Everything about one packaged table."""

    name: str
    #: one line: what it is (``robustfusion datasets`` adds how to prepare it)
    description: str
    #: ``r`` (an R package's ``.rda``/``.RData``) or ``python`` (a file of a Python package)
    source: str
    package: str
    #: the file's path inside the package folder
    member: str
    #: the R object's name (``source="r"``)
    object_name: str
    #: every column of the table, in file order (for a headerless CSV: the names given to them)
    columns: tuple[str, ...]
    target: str
    class_names: tuple[str, ...]
    views: tuple[View, ...]
    rows: int
    split: SplitRule
    #: columns that are neither features nor the target
    drop: tuple[str, ...]
    licence: str
    #: how to install the package, ending the "not found" error
    install: str

    def view_columns(self) -> dict[str, list[str]]:
        """Modality -> its columns (``suffixes`` and ``rest`` in file order)."""
        features = [c for c in self.columns if c != self.target and c not in self.drop]
        chosen: dict[str, list[str]] = {}
        for view in self.views:
            picked = list(view.columns.names)
            if view.columns.suffixes:
                picked += [c for c in features if c.endswith(view.columns.suffixes)]
            chosen[view.name] = picked
        taken = {c for cols in chosen.values() for c in cols}
        for view in self.views:
            if view.columns.rest:
                chosen[view.name] += [c for c in features if c not in taken]
        return chosen

    def dims(self) -> dict[str, int]:
        return {name: len(cols) for name, cols in self.view_columns().items()}


# ---------------------------------------------------------------------------- the specs
def _satellite_bands(*bands: int) -> tuple[str, ...]:
    """Columns ``x.(4p + b)`` of pixels ``p = 0..8`` (pixel-major) for spectral bands ``bands``."""
    return tuple(f"x.{4 * p + b}" for p in range(9) for b in bands)


_MLBENCH = (
    "apt-get install r-cran-mlbench (or `apt-get download r-cran-mlbench` and --raw FILE.deb)"
)
_KERNLAB = (
    "apt-get install r-cran-kernlab (or `apt-get download r-cran-kernlab` and --raw FILE.deb)"
)
_CARET = "apt-get install r-cran-caret (or `apt-get download r-cran-caret` and --raw FILE.deb)"

_SPAM_WORDS = (
    "make", "address", "all", "num3d", "our", "over", "remove", "internet", "order", "mail",
    "receive", "will", "people", "report", "addresses", "free", "business", "email", "you",
    "credit", "your", "font", "num000", "money", "hp", "hpl", "george", "num650", "lab", "labs",
    "telnet", "num857", "data", "num415", "num85", "technology", "num1999", "parts", "pm",
    "direct", "cs", "meeting", "original", "project", "re", "edu", "table", "conference",
)  # fmt: skip
_SPAM_CHARACTERS = (
    "charSemicolon", "charRoundbracket", "charSquarebracket", "charExclamation", "charDollar",
    "charHash", "capitalAve", "capitalLong", "capitalTotal",
)  # fmt: skip
_GERMAN_NUMERIC = (
    "Duration", "Amount", "InstallmentRatePercentage", "ResidenceDuration", "Age",
    "NumberExistingCredits", "NumberPeopleMaintenance",
)  # fmt: skip
_GERMAN_COLUMNS = (
    *_GERMAN_NUMERIC, "Telephone", "ForeignWorker", "Class",
    "CheckingAccountStatus.lt.0", "CheckingAccountStatus.0.to.200", "CheckingAccountStatus.gt.200",
    "CheckingAccountStatus.none", "CreditHistory.NoCredit.AllPaid",
    "CreditHistory.ThisBank.AllPaid", "CreditHistory.PaidDuly", "CreditHistory.Delay",
    "CreditHistory.Critical", "Purpose.NewCar", "Purpose.UsedCar", "Purpose.Furniture.Equipment",
    "Purpose.Radio.Television", "Purpose.DomesticAppliance", "Purpose.Repairs",
    "Purpose.Education", "Purpose.Vacation", "Purpose.Retraining", "Purpose.Business",
    "Purpose.Other", "SavingsAccountBonds.lt.100", "SavingsAccountBonds.100.to.500",
    "SavingsAccountBonds.500.to.1000", "SavingsAccountBonds.gt.1000", "SavingsAccountBonds.Unknown",
    "EmploymentDuration.lt.1", "EmploymentDuration.1.to.4", "EmploymentDuration.4.to.7",
    "EmploymentDuration.gt.7", "EmploymentDuration.Unemployed", "Personal.Male.Divorced.Seperated",
    "Personal.Female.NotSingle", "Personal.Male.Single", "Personal.Male.Married.Widowed",
    "Personal.Female.Single", "OtherDebtorsGuarantors.None", "OtherDebtorsGuarantors.CoApplicant",
    "OtherDebtorsGuarantors.Guarantor", "Property.RealEstate", "Property.Insurance",
    "Property.CarOther", "Property.Unknown", "OtherInstallmentPlans.Bank",
    "OtherInstallmentPlans.Stores", "OtherInstallmentPlans.None", "Housing.Rent", "Housing.Own",
    "Housing.ForFree", "Job.UnemployedUnskilled", "Job.UnskilledResident", "Job.SkilledEmployee",
    "Job.Management.SelfEmp.HighlyQualified",
)  # fmt: skip
_SEGMENTATION_COLUMNS = (
    "Cell", "Case", "Class", "AngleCh1", "AreaCh1", "AvgIntenCh1", "AvgIntenCh2", "AvgIntenCh3",
    "AvgIntenCh4", "ConvexHullAreaRatioCh1", "ConvexHullPerimRatioCh1", "DiffIntenDensityCh1",
    "DiffIntenDensityCh3", "DiffIntenDensityCh4", "EntropyIntenCh1", "EntropyIntenCh3",
    "EntropyIntenCh4", "EqCircDiamCh1", "EqEllipseLWRCh1", "EqEllipseOblateVolCh1",
    "EqEllipseProlateVolCh1", "EqSphereAreaCh1", "EqSphereVolCh1", "FiberAlign2Ch3",
    "FiberAlign2Ch4", "FiberLengthCh1", "FiberWidthCh1", "IntenCoocASMCh3", "IntenCoocASMCh4",
    "IntenCoocContrastCh3", "IntenCoocContrastCh4", "IntenCoocEntropyCh3", "IntenCoocEntropyCh4",
    "IntenCoocMaxCh3", "IntenCoocMaxCh4", "KurtIntenCh1", "KurtIntenCh3", "KurtIntenCh4",
    "LengthCh1", "NeighborAvgDistCh1", "NeighborMinDistCh1", "NeighborVarDistCh1", "PerimCh1",
    "ShapeBFRCh1", "ShapeLWRCh1", "ShapeP2ACh1", "SkewIntenCh1", "SkewIntenCh3", "SkewIntenCh4",
    "SpotFiberCountCh3", "SpotFiberCountCh4", "TotalIntenCh1", "TotalIntenCh2", "TotalIntenCh3",
    "TotalIntenCh4", "VarIntenCh1", "VarIntenCh3", "VarIntenCh4", "WidthCh1", "XCentroid",
    "YCentroid",
)  # fmt: skip
_WDBC_MEASURES = (
    "radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
    "concave points", "symmetry", "fractal dimension",
)  # fmt: skip
#: scikit-learn's ``load_breast_cancer().feature_names``, the CSV's column order.
_WDBC_FEATURES = (
    *(f"mean {m}" for m in _WDBC_MEASURES),
    *(f"{m} error" for m in _WDBC_MEASURES),
    *(f"worst {m}" for m in _WDBC_MEASURES),
)

_LETTER_BOX = ("x.box", "y.box", "width", "high", "onpix")
_LETTER_MOMENTS = ("x.bar", "y.bar", "x2bar", "y2bar", "xybar", "x2ybr", "xy2br")
_LETTER_EDGES = ("x.ege", "xegvy", "y.ege", "yegvx")
#: Siebert's "heuristic measures" (compactness, circularity, rectangularity, hollows, ratios).
_VEHICLE_HEURISTIC = (
    "Comp", "Circ", "D.Circ", "Rad.Ra", "Pr.Axis.Ra", "Max.L.Ra", "Scat.Ra", "Elong",
    "Pr.Axis.Rect", "Max.L.Rect", "Holl.Ra",
)  # fmt: skip
#: Siebert's "classical moment based measures" about the major and minor axes.
_VEHICLE_MOMENTS = (
    "Sc.Var.Maxis", "Sc.Var.maxis", "Ra.Gyr", "Skew.Maxis", "Skew.maxis", "Kurt.maxis",
    "Kurt.Maxis",
)  # fmt: skip
_VEHICLE_COLUMNS = (
    "Comp", "Circ", "D.Circ", "Rad.Ra", "Pr.Axis.Ra", "Max.L.Ra", "Scat.Ra", "Elong",
    "Pr.Axis.Rect", "Max.L.Rect", "Sc.Var.Maxis", "Sc.Var.maxis", "Ra.Gyr", "Skew.Maxis",
    "Skew.maxis", "Kurt.maxis", "Kurt.Maxis", "Holl.Ra", "Class",
)  # fmt: skip
_PIMA_EXAMINATION = ("glucose", "pressure", "triceps", "insulin", "mass")
_PIMA_HISTORY = ("pregnant", "pedigree", "age")

SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        name="satellite",
        description="Statlog Landsat MSS 3x3 pixels: visible vs infrared bands, 6 classes, 6435 samples",
        source="r",
        package="mlbench",
        member="data/Satellite.rda",
        object_name="Satellite",
        columns=(*(f"x.{i}" for i in range(1, 37)), "classes"),
        target="classes",
        class_names=(
            "red soil",
            "cotton crop",
            "grey soil",
            "damp grey soil",
            "vegetation stubble",
            "very damp grey soil",
        ),
        views=(
            View(
                "visible",
                Columns(_satellite_bands(1, 2)),
                "bands 1-2 (green, red) of the 9 pixels, 0-255",
            ),
            View(
                "infrared",
                Columns(_satellite_bands(3, 4)),
                "bands 3-4 (near infrared) of the 9 pixels, 0-255",
            ),
        ),
        rows=6435,
        split=SplitRule(
            "rows",
            train_rows=4435,
            note="Statlog's sat.trn (4435) then sat.tst (2000): row 1 is sat.trn's first line; "
            "rows 4436-6435 are, as a set, LIBSVM's satimage.scale.t (the Statlog test set scaled "
            "to [-1, 1] with the training ranges), matched within 2.5e-5 after scaling with the "
            "min/max of rows 1-4435, labels agreeing",
        ),
        drop=(),
        licence="mlbench (GPL-2); data: UCI Statlog (Landsat Satellite), CC BY 4.0",
        install=_MLBENCH,
    ),
    TableSpec(
        name="dna_splice",
        description="Statlog primate splice junctions: upstream vs downstream bases, 3 classes, 3186 samples",
        source="r",
        package="mlbench",
        member="data/DNA.rda",
        object_name="DNA",
        columns=(*(f"V{i}" for i in range(1, 181)), "Class"),
        target="Class",
        class_names=("ei", "ie", "n"),
        views=(
            View(
                "upstream",
                Columns(tuple(f"V{i}" for i in range(1, 91))),
                "bases 1-30 of the 60-base window, 3 binary indicators each",
            ),
            View(
                "downstream",
                Columns(tuple(f"V{i}" for i in range(91, 181))),
                "bases 31-60 of the window, 3 binary indicators each",
            ),
        ),
        rows=3186,
        split=SplitRule(
            "rows",
            train_rows=2000,
            note="Statlog's dna.trn (2000) then dna.tst (1186): rows 1-2000 equal LIBSVM's "
            "dna.scale and rows 2001-3186 its dna.scale.t, row by row, labels included",
        ),
        drop=(),
        licence="mlbench (GPL-2); data: UCI Molecular Biology (Splice-junction Gene Sequences), "
        "Statlog version, CC BY 4.0",
        install=_MLBENCH,
    ),
    TableSpec(
        name="spambase",
        description="UCI Spambase e-mails: word vs character/capital statistics, 2 classes, 4601 samples",
        source="r",
        package="kernlab",
        member="data/spam.rda",
        object_name="spam",
        columns=(*_SPAM_WORDS, *_SPAM_CHARACTERS, "type"),
        target="type",
        class_names=("nonspam", "spam"),
        views=(
            View("words", Columns(_SPAM_WORDS), "48 word frequencies, % of the words"),
            View(
                "characters",
                Columns(_SPAM_CHARACTERS),
                "6 character frequencies (%) and 3 capital-run statistics",
            ),
        ),
        rows=4601,
        split=SplitRule(),
        drop=(),
        licence="kernlab (GPL-2); data: UCI Spambase, CC BY 4.0",
        install=_KERNLAB,
    ),
    TableSpec(
        name="german_credit",
        description="UCI Statlog German credit: numeric vs categorical attributes, 2 classes, 1000 samples",
        source="r",
        package="caret",
        member="data/GermanCredit.RData",
        object_name="GermanCredit",
        columns=_GERMAN_COLUMNS,
        target="Class",
        class_names=("Bad", "Good"),
        views=(
            View(
                "numeric",
                Columns(_GERMAN_NUMERIC),
                "7 numeric attributes (months, amount, rates, years, counts)",
            ),
            View(
                "categorical",
                Columns(rest=True),
                "54 0/1 indicators of the categorical attributes (caret's dummy coding)",
            ),
        ),
        rows=1000,
        split=SplitRule(),
        drop=(),
        licence="caret (GPL-2+); data: UCI Statlog (German Credit Data), CC BY 4.0",
        install=_CARET,
    ),
    TableSpec(
        name="hcs_cells",
        description="Hill et al. cell segmentation quality: body vs stain channels, 2 classes, 2019 samples",
        source="r",
        package="caret",
        member="data/segmentationData.RData",
        object_name="segmentationData",
        columns=_SEGMENTATION_COLUMNS,
        target="Class",
        class_names=("PS", "WS"),
        views=(
            View(
                "body",
                Columns(suffixes=("Ch1",)),
                "channel 1 (the cell-body stain): shape, size, intensity and texture",
            ),
            View(
                "stains",
                Columns(suffixes=("Ch2", "Ch3", "Ch4")),
                "channels 2-4 (the other stains): intensity, texture and fibre features",
            ),
        ),
        rows=2019,
        split=SplitRule(
            "column",
            column="Case",
            train_value="Train",
            test_value="Test",
            note="the data's own Case column (Hill et al.'s training and test cells)",
        ),
        drop=("Cell", "Case", "XCentroid", "YCentroid"),
        licence="caret (GPL-2+); data: Hill, LaPan, Li and Haney (2007), BMC Bioinformatics 8:340",
        install=_CARET,
    ),
    TableSpec(
        name="wdbc",
        description="Wisconsin diagnostic breast cancer: mean vs error vs worst features, 2 classes, 569 samples",
        source="python",
        package="sklearn",
        member="datasets/data/breast_cancer.csv",
        object_name="",
        columns=(*_WDBC_FEATURES, "target"),
        target="target",
        class_names=("malignant", "benign"),
        views=(
            View("mean", Columns(_WDBC_FEATURES[:10]), "mean of 10 nucleus measurements"),
            View("error", Columns(_WDBC_FEATURES[10:20]), "their standard errors"),
            View("worst", Columns(_WDBC_FEATURES[20:]), "their worst (mean of 3 largest) values"),
        ),
        rows=569,
        split=SplitRule(),
        drop=(),
        licence="scikit-learn (BSD-3-Clause); data: UCI Breast Cancer Wisconsin (Diagnostic), "
        "CC BY 4.0",
        install="pip download scikit-learn --no-deps, then pass --raw WHEEL (or pip install "
        "scikit-learn)",
    ),
    TableSpec(
        name="letter",
        description="Frey & Slate letter images: box vs moment vs edge features, 26 classes, 20000 samples",
        source="r",
        package="mlbench",
        member="data/LetterRecognition.rda",
        object_name="LetterRecognition",
        columns=("lettr", *_LETTER_BOX, *_LETTER_MOMENTS, *_LETTER_EDGES),
        target="lettr",
        class_names=tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        views=(
            View("box", Columns(_LETTER_BOX), "bounding box position, size and pixel count, 0-15"),
            View(
                "moments",
                Columns(_LETTER_MOMENTS),
                "means and 2nd/3rd-order moments of the on pixels, 0-15",
            ),
            View("edges", Columns(_LETTER_EDGES), "edge counts and their correlations, 0-15"),
        ),
        rows=20000,
        split=SplitRule(
            "rows",
            train_rows=16000,
            note="UCI's documentation of Letter Recognition: train on the first 16000 items, "
            "test on the remaining 4000",
        ),
        drop=(),
        licence="mlbench (GPL-2); data: UCI Letter Recognition (Frey and Slate 1991), CC BY 4.0",
        install=_MLBENCH,
    ),
    TableSpec(
        name="vehicle",
        description="Siebert vehicle silhouettes: heuristic vs moment features, 4 classes, 846 samples",
        source="r",
        package="mlbench",
        member="data/Vehicle.rda",
        object_name="Vehicle",
        columns=_VEHICLE_COLUMNS,
        target="Class",
        class_names=("bus", "opel", "saab", "van"),
        views=(
            View(
                "heuristic",
                Columns(_VEHICLE_HEURISTIC),
                "compactness, circularity, rectangularity, hollows and aspect ratios (11)",
            ),
            View(
                "moments",
                Columns(_VEHICLE_MOMENTS),
                "scaled variance, radius of gyration, skewness and kurtosis about the axes (7)",
            ),
        ),
        rows=846,
        split=SplitRule(),
        drop=(),
        licence="mlbench (GPL-2); data: UCI Statlog (Vehicle Silhouettes), Turing Institute, "
        "CC BY 4.0",
        install=_MLBENCH,
    ),
    TableSpec(
        name="pima_diabetes",
        description="Pima Indians diabetes: examination vs history, 2 classes, 768 samples",
        source="r",
        package="mlbench",
        member="data/PimaIndiansDiabetes.rda",
        object_name="PimaIndiansDiabetes",
        columns=(
            "pregnant",
            "glucose",
            "pressure",
            "triceps",
            "insulin",
            "mass",
            "pedigree",
            "age",
            "diabetes",
        ),  # fmt: skip
        target="diabetes",
        class_names=("neg", "pos"),
        views=(
            View(
                "examination",
                Columns(_PIMA_EXAMINATION),
                "glucose, blood pressure, skin fold, insulin, body mass index (0 where missing)",
            ),
            View(
                "history",
                Columns(_PIMA_HISTORY),
                "pregnancies, diabetes pedigree function, age",
            ),
        ),
        rows=768,
        split=SplitRule(),
        drop=(),
        licence="mlbench (GPL-2); data: UCI Pima Indians Diabetes, National Institute of "
        "Diabetes and Digestive and Kidney Diseases",
        install=_MLBENCH,
    ),
)


def spec(name: str) -> TableSpec:
    """The spec named ``name``."""
    for item in SPECS:
        if item.name == name:
            return item
    raise DataError(f"no packaged table {name!r}: choose one of {', '.join(s.name for s in SPECS)}")


# --------------------------------------------------------------------------- reading
def read_table(table: TableSpec, raw: Path | None) -> tuple[RFrame, str]:
    """The table as found (``raw``: see ``robustfusion prepare NAME --raw``) and where it was."""
    hint = f"{table.install}, then `robustfusion prepare {table.name}`"
    if table.source == "r":
        data, where = read_package_file(table.package, table.member, raw, hint)
        return read_data_frame(data, table.object_name, where), where
    data, where = read_python_package_file(table.package, table.member, raw, hint)
    return read_sklearn_csv(data, table, where), where


def read_python_package_file(
    package: str, member: str, raw: Path | None, hint: str
) -> tuple[bytes, str]:
    """``<package>/<member>`` from a wheel (zip), the file itself, a package or site-packages
    folder, or (``raw=None``) the installed package found without importing it."""
    if raw is None:
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        locations = list(found.submodule_search_locations or []) if found else []
        for folder in locations:
            candidate = Path(folder) / member
            if candidate.is_file():
                return candidate.read_bytes(), str(candidate)
        raise DataError(f"Python package {package} with {member} is not installed: {hint}")
    raw = Path(raw).expanduser()
    if raw.is_dir():
        for candidate in (raw / member, raw / package / member):
            if candidate.is_file():
                return candidate.read_bytes(), str(candidate)
        raise DataError(f"{raw} holds no {package}/{member}: {hint}")
    if not raw.is_file():
        raise DataError(f"{raw} does not exist: {hint}")
    if zipfile.is_zipfile(raw):
        name = f"{package}/{member}"
        try:
            with zipfile.ZipFile(raw) as archive:
                return archive.read(name), f"{raw}:{name}"
        except KeyError:
            raise DataError(f"{raw} has no {name}: pass the {package} wheel") from None
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{raw} is a damaged zip file ({err}): download it again") from None
    return raw.read_bytes(), str(raw)


def read_sklearn_csv(data: bytes, table: TableSpec, where: str) -> RFrame:
    """scikit-learn's dataset CSV: a header ``N,D,class names...``, then ``D`` features and an
    integer class per line; columns named by ``table.columns``."""
    try:
        text = data.decode("utf-8")
        header = text.split("\n", 1)[0].strip().split(",")
        n, d = int(header[0]), int(header[1])
        values = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except (UnicodeDecodeError, ValueError, IndexError) as err:
        raise DataError(
            f"{where} is not scikit-learn's {table.member} ({err}): pass that file or its wheel"
        ) from None
    names = tuple(header[2:])
    if values.shape != (n, d + 1) or d + 1 != len(table.columns):
        raise DataError(
            f"{where}: {values.shape[0]} rows of {values.shape[1]} values, but its header says "
            f"{n} x {d} + class and {table.name} expects {len(table.columns) - 1} features"
        )
    target = values[:, -1]
    if (
        not np.array_equal(target, np.round(target))
        or target.min() < 0
        or target.max() >= len(names)
    ):
        raise DataError(f"{where}: the class column must hold integers 0-{len(names) - 1}")
    columns = {c: values[:, i] for i, c in enumerate(table.columns[:-1])}
    columns[table.target] = target.astype(np.int64)
    kinds = {c: "double" for c in columns} | {table.target: "factor"}
    return RFrame(columns, {table.target: names}, kinds, n)


# -------------------------------------------------------------------------- the splits
def _split_folder(name: str) -> Traversable:
    return resources.files("robustfusion.data").joinpath("splits", name)


def shipped_labels(table: TableSpec) -> list[str]:
    """The class of every row of the package's file, as the shipped split was built on."""
    path = _split_folder(table.name).joinpath("labels.txt")
    try:
        with path.open("r", encoding="utf-8") as handle:
            return [line.rstrip("\n") for line in handle if line.strip()]
    except FileNotFoundError:
        raise DataError(
            f"the shipped split of {table.name} is missing ({path}): reinstall robustfusion"
        ) from None


def shipped_split(table: TableSpec) -> dict[str, np.ndarray]:
    """``train``/``val``/``test`` -> row numbers (0-based) of the package's file."""
    out = {}
    for part in SPLIT_FILES:
        path = _split_folder(table.name).joinpath(f"{part}.txt")
        try:
            with path.open("r", encoding="utf-8") as handle:
                out[part] = np.array([int(x) for x in handle if x.strip()], dtype=np.int64)
        except FileNotFoundError:
            raise DataError(
                f"the shipped split of {table.name} is missing ({path}): reinstall robustfusion"
            ) from None
    return out


def make_split(table: TableSpec, frame: RFrame, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The split of :attr:`TableSpec.split` (what ``scripts/build_packaged_splits.py`` ships)."""
    rule = table.split
    if rule.kind == "stratified":
        return stratified_split(labels, SPLIT_SEED)
    n = labels.size
    if rule.kind == "rows":
        pool, test = np.arange(rule.train_rows), np.arange(rule.train_rows, n)
    elif rule.kind == "column":
        pool, test = _column_split(table, frame)
    else:  # pragma: no cover - a spec error
        raise ValueError(f"unknown split rule {rule.kind!r}")
    keep, held = stratified_holdout(labels[pool].tolist(), VAL_FRACTION, SPLIT_SEED)
    return {"train": pool[keep], "val": pool[held], "test": test}


def _column_split(table: TableSpec, frame: RFrame) -> tuple[np.ndarray, np.ndarray]:
    rule = table.split
    levels = list(frame.levels.get(rule.column, ()))
    if rule.train_value not in levels or rule.test_value not in levels:
        raise DataError(
            f"{table.name}: column {rule.column} must be a factor with levels "
            f"{rule.train_value} and {rule.test_value}, got {levels}"
        )
    codes = frame.columns[rule.column]
    pool = np.flatnonzero(codes == levels.index(rule.train_value))
    test = np.flatnonzero(codes == levels.index(rule.test_value))
    if pool.size + test.size != codes.size:
        raise DataError(f"{table.name}: some rows of {rule.column} are neither train nor test")
    return pool, test


# --------------------------------------------------------------------------- building
def build_arrays(
    table: TableSpec, frame: RFrame, where: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(labels [N] int64, modality -> float32 [N, D])`` from the table, checked."""
    missing = [c for c in table.columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where} lacks column {missing[0]!r} ({len(missing)} missing): it is not the "
            f"{table.package} file {table.name} was made for"
        )
    labels = target_labels(table, frame, where)
    arrays = {}
    for view, names in table.view_columns().items():
        arrays[view] = np.stack([_numeric(frame, c, where) for c in names], axis=1).astype(
            np.float32
        )
    return labels, arrays


def target_labels(table: TableSpec, frame: RFrame, where: str) -> np.ndarray:
    """The class column as 0-based labels in the order of :attr:`TableSpec.class_names`."""
    levels = frame.levels.get(table.target)
    if levels is None:
        raise DataError(f"{where}: the class column {table.target!r} is not a factor")
    if tuple(levels) != table.class_names:
        raise DataError(
            f"{where}: classes {list(levels)} differ from {table.name}'s {list(table.class_names)}: "
            "pass the package version the dataset was made for"
        )
    codes = np.asarray(frame.columns[table.target], dtype=np.int64)
    if (codes < 0).any():
        raise DataError(f"{where}: {int((codes < 0).sum())} rows have no class (NA)")
    return codes


def _numeric(frame: RFrame, column: str, where: str) -> np.ndarray:
    values = frame.columns[column]
    kind = frame.kinds[column]
    if kind == "factor":
        try:
            numbers = np.array([float(v) for v in frame.levels[column]], dtype=np.float64)
        except ValueError:
            raise DataError(
                f"{where}: column {column!r} is a factor with non-numeric levels "
                f"{list(frame.levels[column])[:4]}: it cannot be a feature"
            ) from None
        if (values < 0).any():
            raise DataError(f"{where}: column {column!r} has missing values (NA)")
        values = numbers[values]
    elif kind == "character":
        raise DataError(f"{where}: column {column!r} holds text: it cannot be a feature")
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(
            f"{where}: column {column!r} has {int((~np.isfinite(values)).sum())} missing or "
            "infinite values"
        )
    return values


def prepare_table(table: TableSpec, raw: Path | None, out: Path | None) -> Path:
    """Write ``<out>/<name>.npz`` (default: the dataset's cache folder); returns the folder."""
    out = dataset_root(table.name, out)
    frame, where = read_table(table, Path(raw).expanduser() if raw is not None else None)
    if frame.n_rows != table.rows:
        raise DataError(
            f"{where} has {frame.n_rows} rows, not the {table.rows} the shipped split of "
            f"{table.name} was made for: pass the original file ({table.package} {table.member})"
        )
    labels, arrays = build_arrays(table, frame, where)
    named = [table.class_names[i] for i in labels]
    shipped = shipped_labels(table)
    if len(shipped) != table.rows:
        raise DataError(
            f"the shipped labels of {table.name} have {len(shipped)} rows, not {table.rows}: "
            "reinstall robustfusion"
        )
    if named != shipped:
        first = next(i for i, (a, b) in enumerate(zip(named, shipped, strict=False)) if a != b)
        raise DataError(
            f"{where}: row {first} is {named[first]!r} where the shipped split has "
            f"{shipped[first]!r}: the rows are not in the order the split was made for"
        )
    split = shipped_split(table)
    if table.split.kind == "column":
        _, test = _column_split(table, frame)
        if not np.array_equal(np.sort(split["test"]), test):
            raise DataError(
                f"{where}: its {table.split.column} column disagrees with the shipped test rows"
            )
    names = np.full(table.rows, "", dtype="<U5")
    for part, rows in split.items():
        names[rows] = part
    if (names == "").any():
        raise DataError(
            f"the shipped split of {table.name} leaves rows out: reinstall robustfusion"
        )
    save_npz(out / f"{table.name}.npz", {"y": labels, "split": names, **arrays})
    return out


def load_table(table: TableSpec, root: Path | None, seed: int) -> DataSplits:
    """Load ``<root>/<name>.npz`` through the ``npz`` loader; add the real names and provenance."""
    folder = dataset_root(table.name, root)
    path = folder / f"{table.name}.npz"
    if not path.is_file():
        raise DataError(f"{path} does not exist: run `robustfusion prepare {table.name}` first")
    splits = npz.load(None, seed, path=path)
    dims = {m.name: m.shape for m in splits.info.modalities}
    expected = {name: (d,) for name, d in table.dims().items()}
    if dims != expected or splits.info.num_classes != len(table.class_names):
        raise DataError(
            f"{path} does not hold {table.name}'s modalities {expected} and "
            f"{len(table.class_names)} classes: run `robustfusion prepare {table.name}` again"
        )
    info = DatasetInfo(
        name=table.name,
        modalities=splits.info.modalities,
        num_classes=len(table.class_names),
        class_names=table.class_names,
        description=table.description,
        extra={
            "source": f"{table.package} {table.member}",
            "prepared": str(path),
            "licence": table.licence,
            "split": _split_description(table),
            "views": {v.name: v.description for v in table.views},
            "notes": list(splits.info.extra.get("notes", [])),
        },
    )
    return replace(splits, info=info)


def _split_description(table: TableSpec) -> str:
    if table.split.kind == "stratified":
        return f"shipped stratified 60/20/20 (seed {SPLIT_SEED})"
    return (
        f"official train/test ({table.split.note}); val = stratified {VAL_FRACTION:.0%} of the "
        f"official training rows (seed {SPLIT_SEED})"
    )


# ------------------------------------------------------------------------ registration
def _register(table: TableSpec) -> None:
    def load(root: Path | None, seed: int) -> DataSplits:
        return load_table(table, root, seed)

    def prepare(raw: Path | None, out: Path | None) -> Path:
        return prepare_table(table, raw, out)

    load.__doc__ = f"Load {table.name} prepared by `robustfusion prepare {table.name}`."
    prepare.__doc__ = f"Build ``<out>/{table.name}.npz`` from {table.package}'s {table.member}."
    source = f"r-cran-{table.package.lower()}" if table.source == "r" else "scikit-learn"
    listed = f"{table.description} (needs `robustfusion prepare`; {source})"
    DATASETS.register(table.name, listed)(load)
    kind = ".deb" if table.source == "r" else "wheel"
    PREPARERS.register(
        table.name,
        f"{table.package} {table.member} -> {table.name}.npz (--raw: the file, the package "
        f"folder or its {kind}; default: the installed package)",
    )(prepare)


def _register_all(specs: Sequence[TableSpec]) -> None:
    for table in specs:
        _register(table)


_register_all(SPECS)
