import matplotlib

# Before pyplot is imported anywhere: the tests must run without a display.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skaecnn import KMeansTriangleFeatures, PatchNormalizer, SparseAutoencoderFeatures  # noqa: E402
from skaecnn.plotting import (  # noqa: E402
    plot_feature_maps,
    plot_filters,
    plot_reconstructions,
    tile_filters,
)


class FakeConv:
    """A fitted ConvPoolTransformer stand-in: valid correlation, then mean pooling."""

    def __init__(self, filters, pool_size=2):
        self.filters_ = filters
        self.patch_size = filters.shape[1]
        self.pool_size = pool_size

    def _as_4d(self, X):
        return X if X.ndim == 4 else X[..., None]

    def convolve(self, X):
        m = self.patch_size
        filters = self._as_4d(self.filters_)
        windows = sliding_window_view(self._as_4d(X), (m, m), axis=(1, 2))
        # windows: (n, h', w', c, m, m); filters: (k, m, m, c).
        return np.einsum("nijcab,kabc->nijk", windows, filters)

    def transform(self, X):
        maps = self.convolve(X)
        n, h, w, k = maps.shape
        p = self.pool_size
        ph, pw = h // p, w // p
        blocks = maps[:, : ph * p, : pw * p].reshape(n, ph, p, pw, p, k)
        pooled = blocks.mean(axis=(2, 4))
        self.output_shape_ = (ph, pw, k)
        return pooled.reshape(n, -1)


def _normalized(f, peak=None):
    centered = f - f.mean()
    return centered / (np.abs(centered).max() if peak is None else peak)


def _tiles(tiled, shape, n_cols, border=1):
    """The cells of a tiling, row-major, and the mask of pixels outside all cells."""
    h, w = shape
    rows = (tiled.shape[0] - border) // (h + border)
    cells, outside = [], np.ones(tiled.shape[:2], dtype=bool)
    for r in range(rows):
        for c in range(n_cols):
            top, left = border + r * (h + border), border + c * (w + border)
            cells.append(tiled[top : top + h, left : left + w])
            outside[top : top + h, left : left + w] = False
    return cells, outside


def _drawn(ax):
    return np.asarray(ax.images[0].get_array())


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- tile_filters ----------------------------------------------------------


def test_tile_filters_tiles_normalized_filters_on_a_square_grid():
    # Rectangular 3 x 4 filters catch a transposed tiling.
    filters = np.random.RandomState(0).normal(size=(7, 3, 4))
    tiled = tile_filters(filters)
    # ceil(sqrt(7)) = 3 columns, 3 rows, 1-pixel borders.
    assert tiled.shape == (3 * 4 + 1, 3 * 5 + 1)
    cells, outside = _tiles(tiled, (3, 4), n_cols=3)
    for cell, f in zip(cells, filters):
        np.testing.assert_allclose(cell, _normalized(f))
        assert np.abs(cell).max() == pytest.approx(1.0)
    # The two cells past the last filter and every border pixel are black.
    assert np.all(cells[7] == -1) and np.all(cells[8] == -1)
    assert np.all(tiled[outside] == -1)


@pytest.mark.parametrize("n_cols, border", [(2, 0), (5, 2), (1, 1)])
def test_tile_filters_n_cols_and_border(n_cols, border):
    filters = np.random.RandomState(1).normal(size=(5, 4, 4))
    tiled = tile_filters(filters, n_cols=n_cols, border=border)
    n_rows = -(-5 // n_cols)
    side = n_rows * (4 + border) + border, n_cols * (4 + border) + border
    assert tiled.shape == side
    cells, outside = _tiles(tiled, (4, 4), n_cols=n_cols, border=border)
    for cell, f in zip(cells, filters):
        np.testing.assert_allclose(cell, _normalized(f))
    assert np.all(tiled[outside] == -1)


def test_tile_filters_common_scale_keeps_relative_magnitudes():
    rng = np.random.RandomState(2)
    magnitudes = np.array([1.0, 10.0, 0.1, 2.0])[:, None, None]
    filters = rng.normal(size=(4, 3, 3)) * magnitudes
    peak = max(np.abs(f - f.mean()).max() for f in filters)
    cells, _ = _tiles(tile_filters(filters, scale="common"), (3, 3), n_cols=2)
    for cell, f in zip(cells, filters):
        np.testing.assert_allclose(cell, _normalized(f, peak))
    assert np.abs(cells[1]).max() == pytest.approx(1.0)
    assert np.abs(cells[2]).max() < 0.05
    # With "each", the small filter is stretched to full contrast instead.
    cells, _ = _tiles(tile_filters(filters, scale="each"), (3, 3), n_cols=2)
    assert np.abs(cells[2]).max() == pytest.approx(1.0)


@pytest.mark.parametrize("scale", ["each", "common"])
def test_tile_filters_constant_filter_is_zero_not_nan(scale):
    filters = np.zeros((2, 3, 3))
    filters[0] = 5.0
    filters[1, 0, 0] = 1.0
    cells, _ = _tiles(tile_filters(filters, scale=scale), (3, 3), n_cols=2)
    np.testing.assert_array_equal(cells[0], 0.0)
    np.testing.assert_allclose(cells[1], _normalized(filters[1]))
    assert np.isfinite(tile_filters(np.ones((3, 2, 2)), scale=scale)).all()


def test_tile_filters_rgb_maps_to_unit_range_with_black_borders():
    filters = np.random.RandomState(3).normal(size=(3, 4, 4, 3))
    tiled = tile_filters(filters)
    assert tiled.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    cells, outside = _tiles(tiled, (4, 4), n_cols=2)
    for cell, f in zip(cells, filters):
        # Mean and peak are taken over all channels of the filter together.
        np.testing.assert_allclose(cell, (_normalized(f) + 1) / 2)
    assert np.all(cells[3] == 0)
    assert np.all(tiled[outside] == 0)
    assert tiled.min() >= 0 and tiled.max() <= 1


def test_tile_filters_single_channel_is_grayscale():
    filters = np.random.RandomState(4).normal(size=(4, 3, 3, 1))
    np.testing.assert_array_equal(tile_filters(filters), tile_filters(filters[..., 0]))


@pytest.mark.parametrize(
    "filters, kwargs, match",
    [
        (np.zeros((4, 3, 3, 2)), {}, "filters"),
        (np.zeros((4, 9)), {}, "filters"),
        (np.zeros((0, 3, 3)), {}, "filters"),
        (np.full((2, 3, 3), np.nan), {}, "filters"),
        (np.zeros((4, 3, 3)), {"scale": "max"}, "scale"),
        (np.zeros((4, 3, 3)), {"n_cols": 0}, "n_cols"),
        (np.zeros((4, 3, 3)), {"border": -1}, "border"),
    ],
)
def test_tile_filters_rejects_bad_input(filters, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tile_filters(filters, **kwargs)


# -- plot_filters ----------------------------------------------------------


def test_plot_filters_draws_the_tiling():
    filters = np.random.RandomState(5).normal(size=(6, 5, 5))
    fig = plot_filters(filters, scale="common", n_cols=2, title="filters")
    assert isinstance(fig, Figure)
    # A pyplot figure, so that plt.show() shows it.
    assert plt.get_fignums() == [fig.number] and plt.gcf() is fig
    (ax,) = fig.axes
    (image,) = ax.images
    expected = tile_filters(filters, scale="common", n_cols=2)
    np.testing.assert_array_equal(_drawn(ax), expected)
    assert image.get_cmap().name == "gray"
    assert image.get_clim() == (-1.0, 1.0)
    assert image.get_interpolation() == "nearest"
    assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    assert ax.get_title() == "filters"


def test_plot_filters_rgb():
    filters = np.random.RandomState(6).normal(size=(5, 4, 4, 3))
    fig = plot_filters(filters)
    np.testing.assert_array_equal(_drawn(fig.axes[0]), tile_filters(filters))


def test_plot_filters_flat_rows_with_patch_shape():
    rows = np.random.RandomState(7).normal(size=(4, 2 * 3 * 3))
    fig = plot_filters(rows, (2, 3, 3))
    expected = tile_filters(rows.reshape(4, 2, 3, 3))
    np.testing.assert_array_equal(_drawn(fig.axes[0]), expected)


def test_plot_filters_of_conv_uses_filters_in_image_space():
    conv = FakeConv(np.random.RandomState(8).normal(size=(4, 3, 3, 3)))
    fig = plot_filters(conv)
    np.testing.assert_array_equal(_drawn(fig.axes[0]), tile_filters(conv.filters_))


def _fitted_sae(d=16, k=4):
    X = np.random.RandomState(9).uniform(size=(40, d))
    return SparseAutoencoderFeatures(n_components=k, tol=1e-2, random_state=0).fit(X), X


def test_plot_filters_of_components():
    sae, X = _fitted_sae()
    expected = tile_filters(sae.components_.reshape(4, 4, 4))
    np.testing.assert_array_equal(_drawn(plot_filters(sae, (4, 4)).axes[0]), expected)

    pipe = make_pipeline(PatchNormalizer(epsilon=1e-2), _fitted_sae()[0])
    fig = plot_filters(pipe.fit(X), (4, 4))
    np.testing.assert_array_equal(
        _drawn(fig.axes[0]), tile_filters(pipe[-1].components_.reshape(4, 4, 4))
    )

    pca = PCA(n_components=3).fit(X)
    fig = plot_filters(pca, (4, 4))
    np.testing.assert_array_equal(
        _drawn(fig.axes[0]), tile_filters(pca.components_.reshape(3, 4, 4))
    )

    km = KMeansTriangleFeatures(n_components=3, random_state=0).fit(X)
    fig = plot_filters(make_pipeline(PatchNormalizer(epsilon=1e-2), km), (4, 4))
    np.testing.assert_array_equal(
        _drawn(fig.axes[0]), tile_filters(km.cluster_centers_.reshape(3, 4, 4))
    )


def test_plot_filters_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    assert plot_filters(np.ones((2, 3, 3)), ax=ax) is fig
    assert len(ax.images) == 1
    # Axes of a SubFigure: the root figure comes back.
    sub_ax = fig.subfigures(1, 2)[0].add_subplot()
    assert plot_filters(np.ones((2, 3, 3)), ax=sub_ax) is fig
    # Given an Axes, no pyplot figure is opened.
    assert plt.get_fignums() == []


def test_plot_filters_rejects_bad_input():
    with pytest.raises(NotFittedError):
        plot_filters(SparseAutoencoderFeatures(), (4, 4))
    with pytest.raises(TypeError, match="cluster_centers_"):
        plot_filters(StandardScaler().fit(np.ones((3, 4))), (2, 2))
    with pytest.raises(TypeError, match="obj"):
        plot_filters("filters")
    with pytest.raises(ValueError, match="obj"):
        plot_filters(np.ones(9))
    with pytest.raises(ValueError, match="patch_shape is required"):
        plot_filters(np.ones((4, 9)))
    with pytest.raises(ValueError, match="patch_shape"):
        plot_filters(np.ones((4, 9)), (3, 4))
    with pytest.raises(ValueError, match="patch_shape"):
        plot_filters(np.ones((4, 9)), (9,))
    with pytest.raises(TypeError, match="patch_shape"):
        plot_filters(np.ones((4, 9)), 9)


# -- plot_feature_maps -----------------------------------------------------


def _panels(subfig):
    return [_drawn(ax) for ax in subfig.axes]


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_plot_feature_maps_draws_image_maps_and_pooled_maps(channels):
    rng = np.random.RandomState(10)
    shape = (10, 9) if channels is None else (10, 9, channels)
    image = rng.uniform(size=shape)
    conv = FakeConv(rng.normal(size=(5, 3, 3) + shape[2:]))
    maps = conv.convolve(image[None])[0]
    pooled = conv.transform(image[None]).reshape(conv.output_shape_)
    assert maps.shape == (8, 7, 5) and pooled.shape == (4, 3, 5)

    fig = plot_feature_maps(conv, image)
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == [fig.number] and plt.gcf() is fig
    image_fig, maps_fig, pooled_fig = fig.subfigs
    assert len(fig.axes) == 1 + 5 + 5
    (drawn,) = _panels(image_fig)
    if channels == 3:
        expected = (image - image.min()) / (image.max() - image.min())
    else:
        expected = image.reshape(10, 9)
    np.testing.assert_allclose(drawn, expected)
    for subfig, stack in ((maps_fig, maps), (pooled_fig, pooled)):
        panels = _panels(subfig)
        assert len(panels) == 5
        for j, panel in enumerate(panels):
            np.testing.assert_allclose(panel, stack[..., j])
    # Every activation map at its own contrast, the pooled maps at a common one.
    clims = [ax.images[0].get_clim() for ax in maps_fig.axes]
    assert clims == [(maps[..., j].min(), maps[..., j].max()) for j in range(5)]
    clims = {ax.images[0].get_clim() for ax in pooled_fig.axes}
    assert clims == {(pooled.min(), pooled.max())}


def test_plot_feature_maps_one_bright_pixel_leaves_other_maps_visible():
    # The first filter's response to one bright pixel is a hundred times the
    # second filter's largest: the second map must still span the gray range.
    image = np.random.RandomState(14).uniform(size=(9, 9))
    image[4, 4] = 100.0
    filters = np.zeros((2, 3, 3))
    filters[0, 1, 1] = 1.0
    filters[1, 0, :] = 0.01
    fig = plot_feature_maps(FakeConv(filters), image)
    weak = fig.subfigs[1].axes[1].images[0]
    lo, hi = weak.get_clim()
    assert (lo, hi) == (weak.get_array().min(), weak.get_array().max())
    assert np.ptp(weak.norm(weak.get_array())) == pytest.approx(1.0)


@pytest.mark.parametrize("container", ["figure", "subfigure"])
def test_plot_feature_maps_and_reconstructions_into_given_figure(container):
    rng = np.random.RandomState(15)
    root = Figure()
    fig = root if container == "figure" else root.subfigures(1, 2)[1]
    conv = FakeConv(rng.normal(size=(3, 3, 3)))
    assert plot_feature_maps(conv, rng.uniform(size=(8, 8)), fig=fig) is root
    assert [len(subfig.axes) for subfig in fig.subfigs] == [1, 3, 3]

    other_root = Figure()
    other = other_root if container == "figure" else other_root.subfigures(2, 1)[0]
    X = rng.uniform(size=(5, 12))
    pca = PCA(n_components=2).fit(X)
    assert plot_reconstructions(pca, X, (3, 4), fig=other) is other_root
    assert len(other.axes) == 10
    # Given a figure, no pyplot figure is opened.
    assert plt.get_fignums() == []


def test_plot_feature_maps_max_maps():
    rng = np.random.RandomState(11)
    image = rng.uniform(size=(8, 8))
    conv = FakeConv(rng.normal(size=(6, 3, 3)))
    fig = plot_feature_maps(conv, image, max_maps=2)
    assert [len(subfig.axes) for subfig in fig.subfigs] == [1, 2, 2]
    maps = conv.convolve(image[None])[0]
    for j, panel in enumerate(_panels(fig.subfigs[1])):
        np.testing.assert_allclose(panel, maps[..., j])
    fig = plot_feature_maps(conv, image, max_maps=100)
    assert [len(subfig.axes) for subfig in fig.subfigs] == [1, 6, 6]


def test_plot_feature_maps_rejects_bad_input():
    conv = FakeConv(np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="image"):
        plot_feature_maps(conv, np.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="image"):
        plot_feature_maps(conv, np.ones((8, 8, 2)))
    with pytest.raises(ValueError, match="max_maps"):
        plot_feature_maps(conv, np.ones((8, 8)), max_maps=0)


# -- plot_reconstructions --------------------------------------------------


def test_plot_reconstructions_inputs_above_reconstructions():
    X = np.random.RandomState(12).uniform(size=(20, 12))
    pca = PCA(n_components=3).fit(X)
    fig = plot_reconstructions(pca, X, (3, 4), n_images=4)
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == [fig.number] and plt.gcf() is fig
    assert len(fig.axes) == 8
    reconstructions = pca.inverse_transform(pca.transform(X[:4]))
    for j in range(4):
        top, bottom = fig.axes[j], fig.axes[4 + j]
        np.testing.assert_allclose(_drawn(top), X[j].reshape(3, 4))
        np.testing.assert_allclose(_drawn(bottom), reconstructions[j].reshape(3, 4))
        # Same gray scale for an input and its reconstruction.
        assert top.images[0].get_clim() == bottom.images[0].get_clim()
        # Row-major: the tops lie above the bottoms in one column.
        assert top.get_position().y0 > bottom.get_position().y1
        assert top.get_position().x0 == pytest.approx(bottom.get_position().x0)
    assert fig.axes[0].get_ylabel() == "input"
    assert fig.axes[4].get_ylabel() == "reconstruction"


def test_plot_reconstructions_rgb_and_default_count():
    sae, X = _fitted_sae(d=2 * 2 * 3, k=3)
    X = X[:6]
    fig = plot_reconstructions(sae, X, (2, 2, 3))
    # Fewer images than n_images=10: all of them.
    assert len(fig.axes) == 12
    reconstructions = sae.inverse_transform(sae.transform(X))
    for j in range(6):
        pair = X[j].reshape(2, 2, 3), reconstructions[j].reshape(2, 2, 3)
        lo, hi = min(a.min() for a in pair), max(a.max() for a in pair)
        for ax, image in zip((fig.axes[j], fig.axes[6 + j]), pair):
            np.testing.assert_allclose(_drawn(ax), (image - lo) / (hi - lo))


def test_plot_reconstructions_rejects_bad_input():
    pca = PCA(n_components=2).fit(np.random.RandomState(13).uniform(size=(10, 12)))
    X = np.ones((3, 12))
    with pytest.raises(ValueError, match="image_shape"):
        plot_reconstructions(pca, X, (3, 3))
    with pytest.raises(ValueError, match="image_shape"):
        plot_reconstructions(pca, X, (2, 3, 2))
    with pytest.raises(ValueError, match="X"):
        plot_reconstructions(pca, X.ravel(), (3, 4))
    with pytest.raises(ValueError, match="X"):
        plot_reconstructions(pca, X[:0], (3, 4))
    with pytest.raises(ValueError, match="n_images"):
        plot_reconstructions(pca, X, (3, 4), n_images=0)


def test_plot_reconstructions_of_an_encoder_without_inverse():
    X = np.random.RandomState(16).uniform(size=(20, 12))
    km = KMeansTriangleFeatures(n_components=3, random_state=0).fit(X)
    for encoder in (km, make_pipeline(StandardScaler(), km)):
        with pytest.raises(TypeError, match="encoder must have an inverse_transform"):
            plot_reconstructions(encoder, X, (3, 4))
    assert plt.get_fignums() == []
