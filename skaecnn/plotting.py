"""Plots of learned filters, feature maps and reconstructions (matplotlib).

By default every function opens a new figure through :mod:`matplotlib.pyplot`,
like ``plt.subplots``: ``plt.show()`` shows it in a script, and notebooks and
IDEs display it as any other pyplot figure. To draw into a figure of your own
instead, pass ``ax=`` to :func:`plot_filters` or ``fig=`` to
:func:`plot_feature_maps` and :func:`plot_reconstructions` (a
:class:`matplotlib.figure.Figure` made without pyplot needs no GUI backend,
e.g. to save pictures on a server). Every function returns the figure it drew
on; save it with ``fig.savefig(...)``.
"""

import math

import matplotlib.pyplot as plt
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._validation import check_option, check_positive_int

__all__ = [
    "plot_feature_maps",
    "plot_filters",
    "plot_reconstructions",
    "tile_filters",
]


# -- helpers ---------------------------------------------------------------


def _grid_shape(n, n_cols=None):
    """``(n_rows, n_cols)`` of a grid holding ``n`` panels, near square by default."""
    if n_cols is None:
        n_cols = math.ceil(math.sqrt(n))
    else:
        n_cols = check_positive_int(n_cols, "n_cols")
    return math.ceil(n / n_cols), n_cols


def _check_shape(shape, name):
    """``shape`` as a tuple ``(h, w)`` or ``(h, w, c)`` of positive ints."""
    message = f"{name} must be a tuple (h, w) or (h, w, c); got {shape!r}."
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(message) from None
    if len(shape) not in (2, 3):
        raise ValueError(message)
    return tuple(int(check_positive_int(s, name)) for s in shape)


def _gray_or_rgb(images, n_lead, name, layout):
    """``images`` of shape (*lead, h, w) or (*lead, h, w, c), with c == 1 squeezed.

    Only grayscale and RGB have an unambiguous picture, so other channel
    counts are refused rather than drawn in some arbitrary way.
    """
    if images.ndim not in (n_lead + 2, n_lead + 3):
        raise ValueError(f"{name} must have shape {layout}; got shape {images.shape}.")
    if images.ndim == n_lead + 3:
        if images.shape[-1] == 1:
            return images[..., 0]
        if images.shape[-1] != 3:
            raise ValueError(
                f"{name} must be grayscale or have 1 or 3 channels; got "
                f"{images.shape[-1]} channels (shape {images.shape})."
            )
    return images


def _panel_axes(container, n, n_cols=None):
    """``n`` Axes on a grid of ``container`` (a Figure or SubFigure), row-major.

    Only the occupied cells get an Axes, so that the figure holds exactly one
    Axes per panel.
    """
    n_rows, n_cols = _grid_shape(n, n_cols)
    grid = container.add_gridspec(n_rows, n_cols, wspace=0.05, hspace=0.05)
    return [container.add_subplot(grid[divmod(i, n_cols)]) for i in range(n)]


def _show(ax, image, vmin, vmax):
    """Draw ``image`` (h, w) in gray, or (h, w, 3) in colour, over [vmin, vmax].

    imshow ignores ``vmin`` and ``vmax`` for RGB data and clips it to [0, 1],
    so colour images are mapped from [vmin, vmax] onto [0, 1] here instead.
    """
    if image.ndim == 3:
        image = (image - vmin) / (vmax - vmin if vmax > vmin else 1.0)
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    # Ticks rather than the whole axis, so that axis labels stay visible.
    ax.set_xticks([])
    ax.set_yticks([])


def _filters_of(obj):
    """The filters array of a fitted estimator, or ``obj`` itself as an array."""
    if hasattr(obj, "steps"):
        obj = obj.steps[-1][1]
    # filters_ first: a ConvPoolTransformer's filters are in image space.
    for attribute in ("filters_", "components_", "cluster_centers_"):
        if hasattr(obj, attribute):
            return np.asarray(getattr(obj, attribute), dtype=np.float64)
    if hasattr(obj, "fit"):
        check_is_fitted(obj)
        raise TypeError(
            f"obj must have a filters_, components_ or cluster_centers_ attribute; "
            f"{type(obj).__name__} has none."
        )
    try:
        return np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            "obj must be a fitted estimator with filters_, components_ or "
            "cluster_centers_, or an "
            f"array of filters; got {type(obj).__name__}."
        ) from None


# -- public functions ------------------------------------------------------


def tile_filters(filters, *, scale="each", n_cols=None, border=1):
    """Tile filters into one image, as UFLDL's ``display_network``.

    Every filter has its mean removed and is divided by the largest absolute
    value of its own (``scale="each"``) or of all filters
    (``scale="common"``), which puts it in [-1, 1]. The filters are laid out
    row by row on a grid, separated and surrounded by ``border`` pixels of
    black; cells past the last filter are black too. A constant filter is
    drawn as 0 (mid-gray).

    Parameters
    ----------
    filters : array-like of shape (k, h, w) or (k, h, w, c)
        The ``k`` filters, channels last; ``c`` must be 1 (drawn as
        grayscale) or 3 (RGB).
    scale : {"each", "common"}, default="each"
        ``"each"`` stretches every filter to its own full contrast;
        ``"common"`` keeps the filters' relative magnitudes.
    n_cols : int, default=None
        Filters per row; ``ceil(sqrt(k))`` by default. The grid has
        ``ceil(k / n_cols)`` rows.
    border : int, default=1
        Width in pixels of the border between and around the tiles, >= 0.

    Returns
    -------
    tiled : ndarray of shape (H, W) or (H, W, 3)
        ``H = n_rows * (h + border) + border`` and
        ``W = n_cols * (w + border) + border``. Grayscale values lie in
        [-1, 1] with borders at -1; RGB values are mapped to [0, 1] by
        ``(v + 1) / 2`` with borders at 0. The tile of filter ``i`` starts at
        row ``border + (i // n_cols) * (h + border)`` and column
        ``border + (i % n_cols) * (w + border)``.

    See Also
    --------
    plot_filters : Draws this tiling.

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn.plotting import tile_filters
    >>> filters = np.random.RandomState(0).normal(size=(10, 5, 5))
    >>> tiled = tile_filters(filters)
    >>> tiled.shape  # 3 rows and 4 columns of 5 x 5 tiles
    (19, 25)
    >>> float(tiled[0, 0]), float(np.abs(tiled[1:6, 1:6]).max())
    (-1.0, 1.0)
    >>> tile_filters(np.ones((4, 3, 3, 3)), border=0).shape
    (6, 6, 3)
    """
    filters = np.asarray(filters, dtype=np.float64)
    filters = _gray_or_rgb(filters, 1, "filters", "(k, h, w) or (k, h, w, c)")
    check_option(scale, "scale", ("each", "common"))
    border = int(check_positive_int(border, "border", min_val=0))
    if len(filters) == 0:
        raise ValueError("filters must hold at least one filter; got 0.")
    if not np.isfinite(filters).all():
        raise ValueError("filters must not contain NaN or infinity.")
    n_rows, n_cols = _grid_shape(len(filters), n_cols)

    pixel_axes = tuple(range(1, filters.ndim))
    centered = filters - filters.mean(axis=pixel_axes, keepdims=True)
    peak = np.abs(centered).max(
        axis=pixel_axes if scale == "each" else None, keepdims=True
    )
    # A constant filter has nothing to show: keep it at 0 rather than 0 / 0.
    normalized = np.divide(
        centered, peak, out=np.zeros_like(centered), where=peak > 0
    )
    rgb = filters.ndim == 4
    if rgb:
        normalized = (normalized + 1) / 2

    h, w = filters.shape[1:3]
    tiled = np.full(
        (n_rows * (h + border) + border, n_cols * (w + border) + border)
        + filters.shape[3:],
        0.0 if rgb else -1.0,
    )
    for i, tile in enumerate(normalized):
        row, col = divmod(i, n_cols)
        top, left = border + row * (h + border), border + col * (w + border)
        tiled[top : top + h, left : left + w] = tile
    return tiled


def plot_filters(
    obj, patch_shape=None, *, scale="each", n_cols=None, ax=None, title=None
):
    """Draw learned filters as a grid of tiles (UFLDL's ``display_network``).

    Parameters
    ----------
    obj : estimator or array-like
        Where the filters come from:

        - a fitted :class:`~skaecnn.ConvPoolTransformer` (its ``filters_``,
          in image space);
        - a fitted estimator with ``components_`` or ``cluster_centers_`` of
          shape (k, d), such as :class:`~skaecnn.SparseAutoencoderFeatures`,
          :class:`~sklearn.neural_network.BernoulliRBM`,
          :class:`~sklearn.decomposition.PCA` or
          :class:`~skaecnn.KMeansTriangleFeatures`, or a
          :class:`~sklearn.pipeline.Pipeline` whose last step is one. The
          rows are drawn as they are, i.e. in the space the estimator saw
          (whitened, if a whitening step precedes it);
        - an array of filters of shape (k, h, w), (k, h, w, c) or (k, d).
    patch_shape : tuple of int, default=None
        ``(h, w)`` or ``(h, w, c)``, channels last: every filter is reshaped
        to it in C order, as patches of that shape flattened with
        ``reshape``. Required when the filters are rows of length ``d``, in
        which case ``h * w * c`` must equal ``d``.
    scale : {"each", "common"}, default="each"
        Contrast of every filter: its own, or common to all filters (see
        :func:`tile_filters`).
    n_cols : int, default=None
        Filters per row; ``ceil(sqrt(k))`` by default.
    ax : matplotlib Axes, default=None
        Axes to draw into; by default a new pyplot figure with one Axes
        (``plt.subplots()``).
    title : str, default=None
        Title of the Axes.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure holding the Axes (the root figure when ``ax`` lies in a
        sub-figure). The Axes' only image is
        ``tile_filters(filters, scale=scale, n_cols=n_cols)`` drawn in gray
        over [-1, 1] (or as RGB).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``obj`` is an estimator that is not fitted.

    See Also
    --------
    tile_filters : The tiling that is drawn.
    plot_feature_maps : The filters' responses on one image.

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import SparseAutoencoderFeatures
    >>> from skaecnn.plotting import plot_filters
    >>> rng = np.random.RandomState(0)
    >>> fig = plot_filters(rng.normal(size=(16, 5, 5)), title="random filters")
    >>> fig.axes[0].images[0].get_array().shape
    (25, 25)
    >>> patches = rng.uniform(size=(100, 36))
    >>> sae = SparseAutoencoderFeatures(n_components=4, tol=1e-2, random_state=0)
    >>> import matplotlib.pyplot as plt
    >>> fig, axes = plt.subplots(1, 2)
    >>> _ = plot_filters(patches[:16], patch_shape=(6, 6), ax=axes[0])
    >>> _ = plot_filters(sae.fit(patches), patch_shape=(6, 6), ax=axes[1])
    >>> plt.show()  # in a script: opens a window (nothing without a display)
    """
    filters = _filters_of(obj)
    if filters.ndim < 2:
        raise ValueError(
            "obj must hold filters of shape (k, d), (k, h, w) or (k, h, w, c); "
            f"got shape {filters.shape}."
        )
    if patch_shape is not None:
        patch_shape = _check_shape(patch_shape, "patch_shape")
        d = math.prod(filters.shape[1:])
        if math.prod(patch_shape) != d:
            raise ValueError(
                f"patch_shape {patch_shape} has {math.prod(patch_shape)} values, "
                f"but every filter has {d}."
            )
        filters = filters.reshape(len(filters), *patch_shape)
    elif filters.ndim == 2:
        raise ValueError(
            f"patch_shape is required for filters of shape {filters.shape}: "
            "pass (h, w) or (h, w, c) with h * w * c == "
            f"{filters.shape[1]}."
        )
    tiled = tile_filters(filters, scale=scale, n_cols=n_cols)

    if ax is None:
        fig, ax = plt.subplots()
    else:
        # The root figure, also when ax lies in a SubFigure.
        fig = ax.figure.figure
    # The ranges tile_filters puts grayscale and RGB tiles in.
    _show(ax, tiled, *((0.0, 1.0) if tiled.ndim == 3 else (-1.0, 1.0)))
    if title is not None:
        ax.set_title(title)
    return fig


def plot_feature_maps(conv, image, *, max_maps=None, fig=None):
    """Draw one image, its activation maps and its pooled maps.

    Parameters
    ----------
    conv : ConvPoolTransformer
        Fitted; ``conv.convolve`` gives the un-pooled activation maps and
        ``conv.transform`` the pooled ones, reshaped to
        ``conv.output_shape_``.
    image : array-like of shape (h, w) or (h, w, c)
        One image, as ``conv`` expects it; ``c`` must be 1 or 3 for it to be
        drawn.
    max_maps : int, default=None
        Draw only the maps of the first ``max_maps`` filters; all ``k`` by
        default. Every map takes an Axes, so hundreds of maps are slow to
        draw.
    fig : matplotlib Figure or SubFigure, default=None
        Where to draw; by default a new pyplot figure of 12 x 4.5 inches.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (the root figure when ``fig`` is a sub-figure).
        The drawing is three sub-figures of ``fig``, in ``fig.subfigs``: the
        image; the grid of activation maps
        ``conv.convolve(image[None])[0][..., j]``; the grid of pooled maps.
        Map ``j`` is the ``j``-th Axes of its sub-figure. Every activation
        map has its own gray scale, from its minimum to its maximum: they
        show where each filter responds, which one common scale would hide
        when a few strong responses set it. The pooled maps share one scale,
        from their joint minimum to maximum, so that the filters' overall
        responses (the features) can be compared.

    See Also
    --------
    plot_filters : The filters themselves.

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import ConvPoolTransformer  # doctest: +SKIP
    >>> from skaecnn.plotting import plot_feature_maps
    >>> rng = np.random.RandomState(0)
    >>> images = rng.uniform(size=(20, 12, 12))
    >>> conv = ConvPoolTransformer(...).fit(images)  # doctest: +SKIP
    >>> fig = plot_feature_maps(conv, images[0], max_maps=4)  # doctest: +SKIP
    >>> [len(subfig.axes) for subfig in fig.subfigs]  # doctest: +SKIP
    [1, 4, 4]
    """
    image = np.asarray(image)
    shown = _gray_or_rgb(image, 0, "image", "(h, w) or (h, w, c)")
    maps = np.asarray(conv.convolve(image[None]))[0]
    pooled = np.asarray(conv.transform(image[None]))
    pooled = pooled.reshape(1, *conv.output_shape_)[0]
    k = maps.shape[-1]
    n = k if max_maps is None else min(k, check_positive_int(max_maps, "max_maps"))

    if fig is None:
        fig = plt.figure(figsize=(12, 4.5))
    subfigs = fig.subfigures(1, 3, width_ratios=(1, 1.5, 1.5))
    _show(subfigs[0].add_subplot(), shown, shown.min(), shown.max())
    subfigs[0].suptitle(f"image {image.shape[0]} x {image.shape[1]}")
    for subfig, stack, label, own_scale in (
        (subfigs[1], maps[..., :n], "activation maps", True),
        (subfigs[2], pooled[..., :n], "pooled maps", False),
    ):
        for j, ax in enumerate(_panel_axes(subfig, n)):
            scale = stack[..., j] if own_scale else stack
            _show(ax, stack[..., j], scale.min(), scale.max())
        subfig.suptitle(
            f"{label} {stack.shape[0]} x {stack.shape[1]} ({n} of {k})"
        )
    return fig.figure


def plot_reconstructions(encoder, X, image_shape, *, n_images=10, fig=None):
    """Draw images above their reconstructions by an encoder.

    Parameters
    ----------
    encoder : estimator
        Fitted, with ``transform`` and ``inverse_transform``, such as
        :class:`~skaecnn.SparseAutoencoderFeatures`, PCA or a Pipeline of
        such steps (:class:`~skaecnn.KMeansTriangleFeatures` and
        :class:`~skaecnn.PatchNormalizer` have no inverse).
    X : array-like of shape (n_samples, n_features)
        Flattened images, as ``encoder`` expects them.
    image_shape : tuple of int
        ``(h, w)`` or ``(h, w, c)`` with ``c`` 1 or 3: every row of ``X`` is
        reshaped to it in C order; ``h * w * c`` must equal
        ``n_features``.
    n_images : int, default=10
        Draw the first ``min(n_images, n_samples)`` images.
    fig : matplotlib Figure or SubFigure, default=None
        Where to draw; by default a new pyplot figure, ``1.3 * n + 1``
        inches wide and 3 high.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure drawn on (the root figure when ``fig`` is a sub-figure).
        ``fig`` gets ``2 * n`` Axes, row-major: the first row shows the inputs, the
        second ``encoder.inverse_transform(encoder.transform(X))``, each
        reconstruction below its input. An input and its reconstruction
        share one gray scale (or RGB mapping), from their joint minimum to
        maximum, so that their contrasts compare.

    Raises
    ------
    TypeError
        If ``encoder`` has no ``inverse_transform``.

    See Also
    --------
    plot_filters : The filters the encoder learned.

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import SparseAutoencoderFeatures
    >>> from skaecnn.plotting import plot_reconstructions
    >>> X = np.random.RandomState(0).uniform(size=(50, 64))
    >>> sae = SparseAutoencoderFeatures(n_components=8, tol=1e-2, random_state=0)
    >>> fig = plot_reconstructions(sae.fit(X), X, (8, 8), n_images=5)
    >>> len(fig.axes)
    10
    """
    if not hasattr(encoder, "inverse_transform"):
        raise TypeError(
            "encoder must have an inverse_transform method to reconstruct X; "
            f"{type(encoder).__name__} has none (a Pipeline has one only if "
            "every step does: KMeansTriangleFeatures and PatchNormalizer do not)."
        )
    image_shape = _check_shape(image_shape, "image_shape")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D, one flattened image per row; got shape {X.shape}."
        )
    if len(X) == 0:
        raise ValueError("X must hold at least one image; got 0.")
    n = min(len(X), check_positive_int(n_images, "n_images"))
    if math.prod(image_shape) != X.shape[1]:
        raise ValueError(
            f"image_shape {image_shape} has {math.prod(image_shape)} values, but "
            f"X has {X.shape[1]} features."
        )
    X = X[:n]
    inputs = _gray_or_rgb(
        X.reshape(n, *image_shape), 1, "image_shape", "(h, w) or (h, w, c)"
    )
    reconstructions = np.asarray(encoder.inverse_transform(encoder.transform(X)))
    reconstructions = reconstructions.reshape(inputs.shape)

    if fig is None:
        fig = plt.figure(figsize=(1.3 * n + 1, 3))
    axes = _panel_axes(fig, 2 * n, n_cols=n)
    for j in range(n):
        pair = (inputs[j], reconstructions[j])
        vmin, vmax = min(a.min() for a in pair), max(a.max() for a in pair)
        for ax, image in zip((axes[j], axes[n + j]), pair):
            _show(ax, image, vmin, vmax)
    axes[0].set_ylabel("input")
    axes[n].set_ylabel("reconstruction")
    return fig.figure
