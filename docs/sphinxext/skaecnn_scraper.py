"""A sphinx-gallery image scraper for figures made by :mod:`skaecnn.plotting`.

The functions of :mod:`skaecnn.plotting` build their figures with
:class:`matplotlib.figure.Figure` directly, without registering them with
pyplot, so sphinx-gallery's own matplotlib scraper (which asks pyplot for its
open figures) does not see them. This scraper saves every such figure that a
code block has bound to a global name of the example, e.g.
``fig = plot_feature_maps(conv, image)``, once.

It must run before the "matplotlib" scraper: pyplot's figures are recognised
by their figure manager, which that scraper removes when it closes them.
"""

import weakref

from matplotlib.figure import Figure
from sphinx_gallery.scrapers import figure_rst

# Figures already shown, or left to the "matplotlib" scraper, so that a figure
# still bound to a name in a later block is not shown again.
_seen = weakref.WeakSet()


def scrape_library_figures(block, block_vars, gallery_conf, **kwargs):
    """Save the example's new figures that pyplot does not know about."""
    figures = []
    for value in list(block_vars["example_globals"].values()):
        if not isinstance(value, Figure) or value in _seen:
            continue
        _seen.add(value)
        if value.canvas.manager is None and all(value is not f for f in figures):
            figures.append(value)
    image_paths = []
    for fig, image_path in zip(figures, block_vars["image_path_iterator"]):
        fig.savefig(image_path, **kwargs)
        image_paths.append(image_path)
    return figure_rst(image_paths, gallery_conf["src_dir"])
