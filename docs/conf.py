"""Sphinx configuration of the skaecnn documentation.

Build from the repository root with::

    pip install -e ".[docs]"
    sphinx-build -W -b html docs docs/_build/html

The gallery examples in ``examples/plot_*.py`` are run during the build.
"""

import os
import re
import warnings

# The examples are small: one thread each for BLAS and Numba keeps their run
# times steady when the build shares the machine with other jobs (multi-threaded
# OpenBLAS slows down many times over when the cores are oversubscribed). Set
# these variables in the environment to override. They must be set before
# NumPy and Numba are first imported.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                  "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import skaecnn  # noqa: E402

# -- Project -----------------------------------------------------------------

project = "skaecnn"
author = "skaecnn developers"
copyright = "skaecnn developers"
release = skaecnn.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"

# autosummary writes one page per public class and function into generated/.
autosummary_generate = True
autodoc_typehints = "none"

# numpydoc renders the docstrings. The class templates list the methods
# themselves, so numpydoc must not add a second table of members (which would
# also document the properties twice).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Parameter types stay plain text: without intersphinx (the build needs no
# network) cross-references to Python and NumPy types could not resolve.
numpydoc_xref_param_type = False
# numpydoc's docstring validation, run on every documented object: a
# violation is a warning, and so fails the build under -W. All checks except
# the optional sections (extended summary, See Also, Examples on every
# method), RT02 (this package names its return values, scikit-learn style:
# ``self : object``) and GL08 (objects without a docstring).
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "RT02", "GL08"}

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skaecnn {release}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "secondary_sidebar_items": ["page-toc"],
    "show_toc_level": 2,
}
html_static_path = []
html_show_sourcelink = False

# -- sphinx-gallery ----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Every plot_*.py is run at build time.
    "filename_pattern": r"/plot_",
    "within_subsection_order": "ExampleTitleSortKey",
    # skaecnn.plotting draws through pyplot, so pyplot's figures are all there is.
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "doc_module": ("skaecnn",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skaecnn": None},
    "min_reported_time": 1,
    # Examples print what they report; the value of a block's last expression
    # (often a Figure or a Text) is not shown.
    "capture_repr": (),
    "show_memory": False,
    "remove_config_comments": True,
}

# Examples run in this process with a non-interactive backend.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="FigureCanvasAgg is non-interactive, and thus cannot be shown",
)


# -- Members left out -------------------------------------------------------


def _skip_metadata_requests(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods.

    scikit-learn adds them to classes whose ``fit``/``partial_fit`` take
    metadata; their docstrings link into scikit-learn's own user guide.
    """
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)
