r"""A declared network's forward pass, loss and backward pass over one flat θ, for every layer kind.

A network enters as its *plan*: an int64 array with one row per layer and the columns named below
(:mod:`fastgd.networks` builds it from the declaration), so one compiled function per dtype serves
every network. Shapes are channels first, (channels, height, width) per row of the batch; 1-D
layers are 2-D ones of height 1, a flat vector is (features, 1, 1).

θ holds each layer's weight then its bias, layer after layer, in torch's storage order (a
convolution's weight is (out, in, kh, kw) row-major, a dense layer's (out, in)): the order and
shapes of ``nn.Sequential(...).state_dict()``. The gradient has the same layout.

Workspaces, allocated once by the caller: ``activations`` and ``deltas`` hold one block per layer
boundary, the input's first (the input is copied there, so every layer reads from one array), each
``n_rows × size`` elements, row-major; the ``PLAN_IN_ROW``/``PLAN_OUT_ROW`` columns are the per-row
offsets of a layer's input and output blocks (``n_rows ×`` them is where the block starts).
``columns`` holds, for a group of samples, a convolution's inputs turned samples-innermost, (in·h·w) × samples,
its im2col matrix, (in·kh·kw) × (out_h·out_w·samples), and its product, out × (out_h·out_w·samples), the samples the
innermost index in all three: :func:`workspace_elements` sizes it for groups of up to :data:`COLUMNS_BUDGET`
elements, and each convolution takes as many samples a group as it holds. Where every convolution's im2col matrices
for the whole batch take at most :data:`KEPT_BUDGET` elements (small networks: the MNIST-1D CNN at batch 100),
``columns`` first holds those, kept from the forward pass for the backward (:func:`_kept_elements`), and the groups'
inputs and products after them.

Convolutions are im2col and one matrix product per group of samples through
:func:`fastgd.kernels.blas.gemm` (small convolutions take many samples a product, where one sample's would be too
thin for BLAS to be efficient); the product is then laid out channels first, sample by sample, except where the next
layer after its ReLU is a convolution and both take the whole batch at once: that block, and its deltas, stay
samples-innermost, in the product's order (:func:`_inner_block_after`). With the samples
innermost, a row of im2col is a run of (output places in the plane × samples) elements, where one sample's run is
a few elements in the small planes of small networks (an 8×8 digit's 4×4 second convolution: runs of 4). The
backward pass reads the kept matrices (else builds each group's again: large networks' would not fit in memory),
takes dW for the group in one product, writes Wᵀδ over the spent matrix and scatters it back with col2im. A
convolution followed by a ReLU is one layer to both passes (:func:`_fused_relu`): its outputs go through the ReLU as
they are laid out (its own block is left unwritten), and its backward reads the ReLU's deltas where the ReLU's output
is > 0. Pooling, activations and the loss are direct loops.

Speed (``benchmarks/scripts/cnn_layer_profile.py``, ``reports/cnn_layer_profile.md``): the loops around the
products index the flat workspaces with *unsigned* places (``array[uint64(i)]``): a signed index into a whole
array makes Numba test for a negative one (wraparound) at every access, which kept these loops from vectorising;
every place is non-negative by construction (``NUMBA_BOUNDSCHECK=1`` checks them). im2col and col2im find, once
per kernel offset, the output places whose input is inside the plane (:func:`_valid_range`) and copy those rows
without tests. Max pools whose windows tile the plane (no padding, stride = window, the suite's 2×2) take a path
without bounds (:func:`_tiled`); for 2×2 windows, both passes read a window's four entries at once and choose
among them without branches. ``columns`` is sized for the cache (:data:`COLUMNS_BUDGET`), not for the widest
product: groups of a few samples keep im2col, the products and col2im in L2.

What compiles (issue 26): each layer kind's forward and backward pass (and im2col's group of columns, which both
convolution passes take), the whole forward pass (:func:`_forward`), the whole backward pass (:func:`_backward`)
and the loss (:func:`_loss`) are compiled once per dtype, each on its own, and every caller reaches them through a
symbol (:func:`fastgd.kernels.linking.by_symbol`), where Numba would link their code into each caller and optimise
and emit it again there: the epoch's callback, :func:`forward`, :func:`loss_only`, :func:`loss_and_gradient`,
:func:`predict_in_chunks` and users' own compiled code compile only their few lines of their own. Two layers of one
kind, and any two networks, share the same compiled code; one fused with a ReLU or not, too (``relu_start`` is an
argument, not a constant). ``benchmarks/scripts/compile_profile.py`` says where a first fit's compile time goes.

Only the kinds a network uses compile (:func:`prepare`): the passes call each kind's functions on demand
(:func:`fastgd.kernels.linking.on_demand`), through a slot filled when the kind is prepared, so compiling the passes
compiles no kind. :class:`fastgd.networks.Network`'s methods prepare their plan's kinds before they run compiled
code; a kind nobody prepared (a plan run from a user's own compiled code) is compiled at its first call.

Losses (:data:`LOSSES`), on the last block, a flat (n_rows × k) one: ``cross_entropy``, torch's
``F.cross_entropy`` of logits against probability (one-hot) targets, averaged over rows;
``mse``, torch's ``F.mse_loss``, the mean over every entry; ``binary_cross_entropy``, torch's
``F.binary_cross_entropy_with_logits`` (``nn.BCEWithLogitsLoss``) of each output (a logit) against a target in
[0, 1], the mean over every entry (over the rows, for one output). All are summed in float64.
"""

import math
import types as pytypes

import numpy as np
from numba import types, uint64

from fastgd._config import jit
from fastgd.kernels import linking
from fastgd.kernels.blas import gemm
from fastgd.kernels.linking import by_symbol, on_demand
from fastgd.kernels.mlp import sum_of_squares

__all__ = ["DENSE", "CONV", "MAX_POOL", "AVG_POOL", "GLOBAL_AVG_POOL", "FLATTEN", "RELU", "TANH", "SIGMOID",
           "IDENTITY", "KINDS", "CROSS_ENTROPY", "MSE", "BINARY_CROSS_ENTROPY", "LOSSES", "PLAN_COLUMNS", "forward",
           "loss_only", "loss_and_gradient", "loss_and_gradient_inlined", "predict_in_chunks", "penalty",
           "add_penalty_gradient", "multiply_adds_per_sample", "workspace_elements", "prepare", "kind_functions"]

DENSE, CONV, MAX_POOL, AVG_POOL, GLOBAL_AVG_POOL, FLATTEN, RELU, TANH, SIGMOID, IDENTITY = range(10)
# declaration's kind → code; 1-D and 2-D layers share one code
KINDS = {"Dense": DENSE, "Conv1D": CONV, "Conv2D": CONV, "MaxPool1D": MAX_POOL, "MaxPool2D": MAX_POOL,
         "AvgPool1D": AVG_POOL, "AvgPool2D": AVG_POOL, "GlobalAvgPool": GLOBAL_AVG_POOL, "Flatten": FLATTEN,
         "ReLU": RELU, "Tanh": TANH, "Sigmoid": SIGMOID, "Identity": IDENTITY}
# a max pool's paths (_max_pool_path)
GENERAL, TILED, TILED_2X2 = range(3)
CROSS_ENTROPY, MSE, BINARY_CROSS_ENTROPY = 0, 1, 2
LOSSES = {"cross_entropy": CROSS_ENTROPY, "mse": MSE, "binary_cross_entropy": BINARY_CROSS_ENTROPY}

(PLAN_KIND, PLAN_IN_C, PLAN_IN_H, PLAN_IN_W, PLAN_OUT_C, PLAN_OUT_H, PLAN_OUT_W, PLAN_KERNEL_H, PLAN_KERNEL_W,
 PLAN_STRIDE_H, PLAN_STRIDE_W, PLAN_PAD_TOP, PLAN_PAD_LEFT, PLAN_WEIGHT, PLAN_BIAS, PLAN_IN_ROW,
 PLAN_OUT_ROW) = range(17)
PLAN_COLUMNS = 17
# Elements of ``columns`` that :func:`workspace_elements` aims at (a convolution needing more for one sample
# gets that): the group of samples it holds is what one matrix product covers, and memory stays bounded
# whatever the batch size. 2¹⁷ (1 MiB in float64, about a core's L2): groups that stay in cache made the suite's
# 2c2d faster than groups as wide as memory allows (reports/cnn_layer_profile.md).
COLUMNS_BUDGET = 1 << 17
# ...but at least this many samples' (where the batch has them): a convolution whose one sample fills much of the
# budget took its products one or two samples at a time, short products whose weight gradients each re-read their
# whole output. The suite's 2c2d (2 samples a group by 2¹⁷) trained 1.06-1.07× faster an epoch in groups of 4, in
# two runs; DeepOBS 2c2d (1 by 2¹⁷) and 3c3d within their noise (reports/cnn_group_size.md). The digits and MNIST-1D
# CNNs, whose samples are small, keep their groups.
MIN_GROUP_SAMPLES = 4
# Elements of every convolution's im2col matrices for a whole batch, up to which :func:`workspace_elements` makes
# ``columns`` keep them from the forward pass for the backward (which then builds none). Kept matrices help only while
# they stay in cache with the rest of the pass: 2¹⁷ holds the MNIST-1D CNN's at batch 100 (122 K; its passes 1.20-1.36×
# faster, with the blocks between its convolutions stored samples-innermost: reports/cnn_epoch_speed_mnist1d.md), not
# the digits CNN's at batch 64 (184 K, whose passes took 1.16-1.20× longer kept: reports/cnn_epoch_speed.md), nor the
# DeepOBS networks' (millions), whose peak memory stays as it was.
KEPT_BUDGET = 1 << 17


@jit(inline=True)
def _valid_range(out_size, stride, offset, size):
    """[first, stop) of the output places o with 0 ≤ o·stride + offset < size (an empty range as first == stop)."""
    first = min(out_size, max(0, -(offset // stride)))  # the smallest o with o·stride ≥ −offset: ⌈−offset / stride⌉
    last = size - 1 - offset
    stop = min(out_size, last // stride + 1) if last >= 0 else 0
    return first, max(first, stop)


@jit(inline=True)
def _to_sample_inner(source, source_start, size, count, target, target_start):
    """target[target_start + i·count + s] = source[source_start + s·size + i] for i < ``size``, s < ``count``: a
    group of ``count`` rows of ``size`` elements, transposed so that the samples are the innermost index."""
    for s in range(count):
        row = source_start + s * size
        for i in range(size):
            target[uint64(target_start + i * count + s)] = source[uint64(row + i)]


@jit(inline=True)
def _from_sample_inner(source, source_start, size, count, target, target_start):
    """The inverse of :func:`_to_sample_inner`: target[target_start + s·size + i] = source[source_start + i·count +
    s]."""
    for s in range(count):
        row = target_start + s * size
        for i in range(size):
            target[uint64(row + i)] = source[uint64(source_start + i * count + s)]


@jit(inline=True)
def _im2col_samples(source, source_start, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h, out_w, columns,
                    columns_start):
    """A group of ``count`` samples' im2col matrix, the samples the innermost index on both sides:
    columns[columns_start + (c·kh + a)·kw + b, (oh·out_w + ow)·count + s] (rows ``out_h·out_w·count`` long) =
    source[source_start + ((c·height + y)·width + x)·count + s] with y = oh·sh − pt + a, x = ow·sw − pl + b, zero
    where (y, x) is outside the plane. The places inside the plane are found once per (a, b)
    (:func:`_valid_range`), so that the copy tests no bounds.

    A row of outputs whose inputs are inside the plane is one run of ``count·(ow's in the plane)`` elements for
    stride 1 (``count`` for larger strides): long runs for the small planes of small networks, where one sample's
    rows are a few elements each.
    """
    zero = columns.dtype.type(0.0)
    line_length = out_w * count
    pitch = out_h * line_length
    for a in range(kh):
        first_oh, stop_oh = _valid_range(out_h, sh, a - pt, height)
        for b in range(kw):
            first_ow, stop_ow = _valid_range(out_w, sw, b - pl, width)
            for c in range(c_in):
                row = columns_start + ((c * kh + a) * kw + b) * pitch
                for oh in range(out_h):
                    line = row + oh * line_length
                    if oh < first_oh or oh >= stop_oh or first_ow == stop_ow:
                        for k in range(line_length):
                            columns[uint64(line + k)] = zero
                        continue
                    for k in range(first_ow * count):
                        columns[uint64(line + k)] = zero
                    plane_row = source_start + ((c * height + oh * sh - pt + a) * width + b - pl) * count
                    if sw == 1:
                        start, target = plane_row + first_ow * count, line + first_ow * count
                        for k in range((stop_ow - first_ow) * count):
                            columns[uint64(target + k)] = source[uint64(start + k)]
                    else:
                        for ow in range(first_ow, stop_ow):
                            start, target = plane_row + ow * sw * count, line + ow * count
                            for k in range(count):
                                columns[uint64(target + k)] = source[uint64(start + k)]
                    for k in range(stop_ow * count, line_length):
                        columns[uint64(line + k)] = zero


@by_symbol
@jit(internal=True)
def _group_columns(activations, sample_start, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h, out_w,
                   columns, inputs, matrix, inner):
    """A group of ``count`` samples' im2col matrix at ``matrix`` in ``columns`` (:func:`_im2col_samples`), their
    inputs (at ``sample_start`` in ``activations``) first turned samples-innermost at ``inputs`` in ``columns``; one
    sample's are so already, and so are a block's stored samples-innermost (``inner``): they are read where they
    are."""
    if count > 1 and not inner:
        _to_sample_inner(activations, sample_start, c_in * height * width, count, columns, inputs)
    source, source_start = (activations, sample_start) if count == 1 or inner else (columns, inputs)
    _im2col_samples(source, source_start, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h, out_w, columns,
                    matrix)


@jit(inline=True)
def _col2im_samples_add(columns, columns_start, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h, out_w,
                        target, target_start):
    """The adjoint of :func:`_im2col_samples`: every column entry added back to the input place it came from."""
    line_length = out_w * count
    pitch = out_h * line_length
    for a in range(kh):
        first_oh, stop_oh = _valid_range(out_h, sh, a - pt, height)
        for b in range(kw):
            first_ow, stop_ow = _valid_range(out_w, sw, b - pl, width)
            if first_ow == stop_ow:
                continue
            for c in range(c_in):
                row = columns_start + ((c * kh + a) * kw + b) * pitch
                for oh in range(first_oh, stop_oh):
                    line = row + oh * line_length
                    plane_row = target_start + ((c * height + oh * sh - pt + a) * width + b - pl) * count
                    if sw == 1:
                        start, source = plane_row + first_ow * count, line + first_ow * count
                        for k in range((stop_ow - first_ow) * count):
                            target[uint64(start + k)] += columns[uint64(source + k)]
                    else:
                        for ow in range(first_ow, stop_ow):
                            start, source = plane_row + ow * sw * count, line + ow * count
                            for k in range(count):
                                target[uint64(start + k)] += columns[uint64(source + k)]


@jit(inline=True)
def _window_max(plane, height, width, kh, kw, top, left):
    """(value, index) of the largest entry of the window at (top, left), places outside the plane skipped.

    The first largest in row-major order, or the last NaN, as torch's CPU kernel picks. The window is
    clipped to the plane once, so that the loop over it tests no bounds.
    """
    first_row, last_row = max(top, 0), min(top + kh, height)
    first_column, last_column = max(left, 0), min(left + kw, width)
    where = first_row * width + first_column
    best = plane[where]
    for y in range(first_row, last_row):
        line = plane[y * width:(y + 1) * width]
        for x in range(first_column, last_column):
            value = line[x]
            if value > best or math.isnan(value):
                best, where = value, y * width + x
    return best, where


@jit(inline=True)
def _tiled(height, width, out_h, out_w, kh, kw, sh, sw, pt, pl):
    """Whether a pool's windows tile the plane's top-left corner: no padding, stride = window, every window inside."""
    return sh == kh and sw == kw and pt == 0 and pl == 0 and out_h * kh <= height and out_w * kw <= width


@jit(inline=True)
def _stacked_planes(planes, height, width, out_h, out_w, kh, kw):
    """(planes, planes stacked as one) for a tiling pool: where the windows cover every plane exactly, the planes
    one above the other are one tall plane that the same windows tile (none straddles two), so that the loop over
    the windows' rows runs over every plane at once; else each plane apart."""
    if out_h * kh == height and out_w * kw == width:
        return 1, planes
    return planes, 1


@jit(inline=True)
def _tiled_pool_geometry(layer, n_rows):
    """``(in_start, out_start, planes, height, width, out_h, out_w, kh, kw)`` of a pool whose windows tile the plane,
    its planes stacked into one where they can be (:func:`_stacked_planes`): what its tiled paths take."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    planes, tall = _stacked_planes(n_rows * c_in, height, width, out_h, out_w, kh, kw)
    return in_start, out_start, planes, tall * height, width, tall * out_h, out_w, kh, kw


@jit(inline=True)
def _tile_argmax(source, top, width, kh, kw):
    """The place in ``source`` of the largest entry of the window whose first entry is at ``top`` (rows ``width``
    apart): :func:`_window_max`'s choice (the first largest in row-major order, or the last NaN), with no bounds."""
    where = top
    best = source[uint64(top)]
    for a in range(kh):
        line = top + a * width
        for b in range(kw):
            value = source[uint64(line + b)]
            if value > best or math.isnan(value):
                best, where = value, line + b
    return where


@jit(inline=True)
def _max_pool_tiled(activations, in_start, out_start, planes, height, width, out_h, out_w, kh, kw):
    """Max pool forward over ``planes`` planes whose windows tile (:func:`_tiled`): each window's largest value
    (a NaN where it has one), as :func:`_window_max` gives; tracking the value alone, not its place, lets the loop
    over the windows vectorise."""
    for k in range(planes):
        plane = in_start + k * height * width
        pooled = out_start + k * out_h * out_w
        for oh in range(out_h):
            for ow in range(out_w):
                top = plane + oh * kh * width + ow * kw
                best = activations[uint64(top)]
                for a in range(kh):
                    for b in range(kw):
                        value = activations[uint64(top + a * width + b)]
                        # a choice, not a branch: on data in no order a branch mispredicts half the time
                        best = value if (value > best) | (value != value) else best
                activations[uint64(pooled + oh * out_w + ow)] = best


@jit(inline=True)
def _max_pool_2x2(activations, in_start, out_start, planes, height, width, out_h, out_w):
    """:func:`_max_pool_tiled` for 2×2 windows: the four entries read at once and chosen among in
    :func:`_window_max`'s order, where the general path's loops over a window of two rows of two cost more than
    the choice (the digits CNN's first pool, 64 samples: 0.071 ms that way, 0.018 ms this one)."""
    for k in range(planes):
        plane = in_start + k * height * width
        pooled = out_start + k * out_h * out_w
        for oh in range(out_h):
            top = plane + 2 * oh * width
            line = pooled + oh * out_w
            for ow in range(out_w):
                place = top + 2 * ow
                best = activations[uint64(place)]
                v1, v2 = activations[uint64(place + 1)], activations[uint64(place + width)]
                v3 = activations[uint64(place + width + 1)]
                best = v1 if (v1 > best) | (v1 != v1) else best
                best = v2 if (v2 > best) | (v2 != v2) else best
                best = v3 if (v3 > best) | (v3 != v3) else best
                activations[uint64(line + ow)] = best


@jit(inline=True)
def _max_pool_tiled_backward(activations, deltas, in_start, out_start, planes, height, width, out_h, out_w, kh, kw):
    """Max pool backward for tiling windows: each window's deltas written whole (its largest entry gets the delta,
    the others zero, as the general path's zero-then-add gives, +0.0 included), the places no window covers zeroed."""
    zero = deltas.dtype.type(0.0)
    covered_h, covered_w = out_h * kh, out_w * kw
    for k in range(planes):
        plane = in_start + k * height * width
        pooled = out_start + k * out_h * out_w
        for y in range(height):
            first = y * width + (covered_w if y < covered_h else 0)
            for x in range(plane + first, plane + (y + 1) * width):
                deltas[uint64(x)] = zero
        for oh in range(out_h):
            for ow in range(out_w):
                top = plane + oh * kh * width + ow * kw
                for a in range(kh):
                    for b in range(kw):
                        deltas[uint64(top + a * width + b)] = zero
                where = _tile_argmax(activations, top, width, kh, kw)
                deltas[uint64(where)] = zero + deltas[uint64(pooled + oh * out_w + ow)]


@jit(inline=True)
def _max_pool_2x2_backward(activations, deltas, in_start, out_start, planes, height, width, out_h, out_w):
    """:func:`_max_pool_tiled_backward` for 2×2 windows, without branches: each window's four deltas zeroed, then its
    delta written at the place of its largest entry, found again by the forward's choices (:func:`_max_pool_2x2`:
    the first largest, or the last NaN) made on the places as well as the values, where the argmax's branches
    (:func:`_tile_argmax`) mispredict on data in no order."""
    zero = deltas.dtype.type(0.0)
    for k in range(planes):
        plane = in_start + k * height * width
        pooled = out_start + k * out_h * out_w
        for y in range(2 * out_h, height):
            for x in range(plane + y * width, plane + (y + 1) * width):
                deltas[uint64(x)] = zero
        for oh in range(out_h):
            top = plane + 2 * oh * width
            for y in range(2):
                for x in range(top + y * width + 2 * out_w, top + (y + 1) * width):
                    deltas[uint64(x)] = zero
            for ow in range(out_w):
                place = top + 2 * ow
                delta = zero + deltas[uint64(pooled + oh * out_w + ow)]  # +0.0 for −0.0, as the general path's add
                best = activations[uint64(place)]
                v1, v2 = activations[uint64(place + 1)], activations[uint64(place + width)]
                v3 = activations[uint64(place + width + 1)]
                chosen = (v1 > best) | (v1 != v1)
                best, where = (v1, 1) if chosen else (best, 0)
                chosen = (v2 > best) | (v2 != v2)
                best, where = (v2, width) if chosen else (best, where)
                where = width + 1 if (v3 > best) | (v3 != v3) else where
                deltas[uint64(place)] = zero
                deltas[uint64(place + 1)] = zero
                deltas[uint64(place + width)] = zero
                deltas[uint64(place + width + 1)] = zero
                deltas[uint64(place + where)] = delta


@jit(inline=True)
def _conv_sample_elements(in_size, depth, c_out, positions, kept):
    """Elements of ``columns``' scratch a convolution takes per sample of a group: its inputs with the samples
    innermost (in the backward, their deltas) and its product (in the backward, its output deltas), both with the
    samples innermost, and its im2col columns unless ``kept`` (they are then in the kept matrices)."""
    return in_size + c_out * positions + (0 if kept else depth * positions)


@jit(inline=True)
def _group_size(scratch, n_rows, per_sample):
    """How many samples a convolution takes a product: at least one, at most as many as ``scratch`` elements hold
    at ``per_sample`` each, the batch in as few groups as that allows, of sizes as even as they can be (100 rows where
    88 fit: 50 and 50, not 88 and 12, whose thin product BLAS takes slowly)."""
    largest = max(1, min(n_rows, scratch // per_sample))
    n_groups = max(1, (n_rows + largest - 1) // largest)
    return (n_rows + n_groups - 1) // n_groups


@jit(inline=True)
def _conv_sizes(layer):
    """A convolution's (elements of one sample's input, rows of its im2col matrix, output places, output channels)."""
    return (layer[PLAN_IN_C] * layer[PLAN_IN_H] * layer[PLAN_IN_W], layer[PLAN_IN_C] * layer[PLAN_KERNEL_H]
            * layer[PLAN_KERNEL_W], layer[PLAN_OUT_H] * layer[PLAN_OUT_W], layer[PLAN_OUT_C])


def _kept_elements(plan, n_rows, columns_size):
    """Where ``columns``' scratch starts: after every convolution's im2col matrix for all ``n_rows`` samples (the
    kept matrices, convolution after convolution) where ``columns_size`` elements hold them and one sample's scratch
    of each convolution, else 0 (nothing kept; each pass builds the matrices group by group in the scratch).

    Both passes decide from the same three numbers, so a forward pass keeps exactly what the backward pass on the
    same batch reads; :func:`workspace_elements` sizes ``columns`` to keep them where they take at most
    :data:`KEPT_BUDGET` elements."""
    kept, one_sample = 0, 0
    for layer in range(plan.shape[0]):
        if plan[layer, PLAN_KIND] == CONV:
            in_size, depth, positions, c_out = _conv_sizes(plan[layer])
            kept += n_rows * depth * positions
            one_sample = max(one_sample, _conv_sample_elements(in_size, depth, c_out, positions, True))
    return kept if kept > 0 and kept + one_sample <= columns_size else 0


# _kept_elements's own source in Python (fastgd.cuda.network takes the CPU's places through it),
# calling its helpers' Python functions: calling the compiled ones from Python would compile them. The passes call it
# compiled once, by symbol: inlined into both, with :func:`_inner_block_after`, it made the digits CNN's first fit
# compile 2-3 s longer.
_kept_elements_python = pytypes.FunctionType(_kept_elements.__code__,
                                             dict(globals(), _conv_sizes=_conv_sizes.py_func,
                                                  _conv_sample_elements=_conv_sample_elements.py_func))
_kept_elements = by_symbol(jit(internal=True)(_kept_elements))


@jit(inline=True)
def _layer_geometry(layer, n_rows):
    """A plan row's fields, in the order both passes unpack them, with the sizes and the batch's starts they imply."""
    c_in, height, width = layer[PLAN_IN_C], layer[PLAN_IN_H], layer[PLAN_IN_W]
    c_out, out_h, out_w = layer[PLAN_OUT_C], layer[PLAN_OUT_H], layer[PLAN_OUT_W]
    return (layer[PLAN_KIND], c_in, height, width, c_out, out_h, out_w, c_in * height * width, c_out * out_h * out_w,
            n_rows * layer[PLAN_IN_ROW], n_rows * layer[PLAN_OUT_ROW], layer[PLAN_WEIGHT], layer[PLAN_BIAS],
            layer[PLAN_KERNEL_H], layer[PLAN_KERNEL_W], layer[PLAN_STRIDE_H], layer[PLAN_STRIDE_W],
            layer[PLAN_PAD_TOP], layer[PLAN_PAD_LEFT])


# Each layer kind's forward and backward pass (each pooling path, each activation) is its own compiled function,
# reached through the small dispatches _forward_layer and _backward_layer on demand (see the module's docstring, "What
# compiles"). A call per layer and batch costs nothing next to the layer's loops.


def _layer_signature(*rest):
    """``on_demand``'s parameter types of a layer kind's function: (θ, the plan's row, n_rows, *rest), each of
    ``rest`` "real" (a 1-D array of θ's dtype), "int" or "bool"."""
    def signature_of(real):
        array = types.Array(real, 1, "C")
        names = {"real": array, "int": types.int64, "bool": types.boolean}
        return (array, types.Array(types.int64, 1, "C"), types.int64) + tuple(names[name] for name in rest)
    return signature_of


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _dense_forward(theta, layer, n_rows, activations):
    """A dense layer's outputs: X Wᵀ (one product), then the bias added row by row."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    outputs = activations[out_start:out_start + n_rows * out_size]
    gemm(activations, in_start, theta, weight, activations, out_start, n_rows, out_size, in_size, False, True,
         1.0, 0.0)
    if bias >= 0:
        for i in range(n_rows):
            row = outputs[i * out_size:(i + 1) * out_size]
            for j in range(out_size):
                row[j] += theta[bias + j]


@on_demand(_layer_signature("real", "real", "int", "int", "int", "bool", "bool"))
@jit(internal=True)
def _conv_forward(theta, layer, n_rows, activations, columns, relu_start, kept, scratch, inputs_inner, outputs_inner):
    """A convolution's outputs: per group of samples, the inputs turned samples-innermost, im2col and one product,
    then laid out channels first, sample by sample, plus the bias.

    ``relu_start`` ≥ 0: the block of the ReLU that follows (fused, :func:`_fused_relu`), where the outputs go through
    the ReLU instead; the convolution's own block is then not written (no layer reads it). ``kept`` ≥ 0: where in
    ``columns`` the batch's im2col matrix goes, kept for the backward pass (:func:`_kept_elements`), group after
    group; < 0: each group's goes in the scratch, which starts at ``scratch``. ``inputs_inner``, ``outputs_inner``:
    its input block, and the fused ReLU's output block, are stored samples-innermost (:func:`_inner_block_after`;
    the batch is then one group)."""
    real = theta.dtype.type
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    positions = out_h * out_w
    depth = c_in * kh * kw
    group = _group_size(columns.size - scratch, n_rows,
                        _conv_sample_elements(in_size, depth, c_out, positions, kept >= 0))
    # the scratch: the group's inputs (samples innermost), its product, its im2col matrix where not kept
    product = scratch + group * in_size
    matrix = kept if kept >= 0 else product + group * c_out * positions
    zero = real(0.0)
    for first in range(0, n_rows, group):
        count = min(group, n_rows - first)
        pitch = count * positions
        sample_start = in_start + first * in_size
        if kept >= 0:
            matrix = kept + first * depth * positions
        _group_columns(activations, sample_start, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h, out_w,
                       columns, scratch, matrix, inputs_inner)
        gemm(theta, weight, columns, matrix, columns, product, c_out, pitch, depth, False, False, 1.0, 0.0)
        if outputs_inner:
            # the product's own order: one run per channel, through the ReLU (NaN passes through, as the ReLU layer)
            for o in range(c_out):
                shift = theta[bias + o] if bias >= 0 else zero
                source, target = product + o * pitch, relu_start + o * pitch
                for k in range(pitch):
                    z = columns[uint64(source + k)] + shift
                    activations[uint64(target + k)] = zero if z <= zero else z
            continue
        for o in range(c_out):
            shift = theta[bias + o] if bias >= 0 else zero
            source = product + o * pitch
            for s in range(count):
                if relu_start < 0:
                    plane = out_start + (first + s) * out_size + o * positions
                    for p in range(positions):
                        activations[uint64(plane + p)] = columns[uint64(source + p * count + s)] + shift
                else:
                    plane = relu_start + (first + s) * out_size + o * positions
                    for p in range(positions):
                        z = columns[uint64(source + p * count + s)] + shift
                        # as the ReLU layer: NaN passes through
                        activations[uint64(plane + p)] = zero if z <= zero else z


@jit(inline=True)
def _max_pool_path(layer):
    """Which of its compiled functions a max pool's plan row takes: ``TILED_2X2`` or ``TILED`` where its windows tile
    the plane (:func:`_tiled`), else ``GENERAL``."""
    kh, kw = layer[PLAN_KERNEL_H], layer[PLAN_KERNEL_W]
    if not _tiled(layer[PLAN_IN_H], layer[PLAN_IN_W], layer[PLAN_OUT_H], layer[PLAN_OUT_W], kh, kw,
                  layer[PLAN_STRIDE_H], layer[PLAN_STRIDE_W], layer[PLAN_PAD_TOP], layer[PLAN_PAD_LEFT]):
        return GENERAL
    return TILED_2X2 if kh == 2 and kw == 2 else TILED


# _max_pool_path's own source in Python (kind_functions), calling _tiled's Python function: calling the compiled one
# from Python would compile it
_max_pool_path_python = pytypes.FunctionType(_max_pool_path.py_func.__code__,
                                             dict(globals(), _tiled=_tiled.py_func))


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _max_pool_forward_tiled(theta, layer, n_rows, activations):
    """A max pool's outputs where its windows (not 2×2) tile the plane (:func:`_tiled`): the path without bounds."""
    in_start, out_start, planes, height, width, out_h, out_w, kh, kw = _tiled_pool_geometry(layer, n_rows)
    _max_pool_tiled(activations, in_start, out_start, planes, height, width, out_h, out_w, kh, kw)


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _max_pool_forward_2x2(theta, layer, n_rows, activations):
    """A 2×2 max pool's outputs where its windows tile the plane (:func:`_max_pool_2x2`)."""
    in_start, out_start, planes, height, width, out_h, out_w, kh, kw = _tiled_pool_geometry(layer, n_rows)
    _max_pool_2x2(activations, in_start, out_start, planes, height, width, out_h, out_w)


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _max_pool_forward(theta, layer, n_rows, activations):
    """A max pool's outputs, any windows (each window clipped to the plane)."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    inputs = activations[in_start:in_start + n_rows * in_size]
    outputs = activations[out_start:out_start + n_rows * out_size]
    for i in range(n_rows):
        for c in range(c_in):
            plane = inputs[(i * c_in + c) * height * width:(i * c_in + c + 1) * height * width]
            pooled = outputs[(i * c_in + c) * out_h * out_w:(i * c_in + c + 1) * out_h * out_w]
            for oh in range(out_h):
                for ow in range(out_w):
                    pooled[oh * out_w + ow] = _window_max(plane, height, width, kh, kw, oh * sh - pt, ow * sw - pl)[0]


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _avg_pool_forward(theta, layer, n_rows, activations):
    """An average pool's outputs."""
    real = theta.dtype.type
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    inputs = activations[in_start:in_start + n_rows * in_size]
    outputs = activations[out_start:out_start + n_rows * out_size]
    scale = real(1.0 / (kh * kw))
    for i in range(n_rows):
        for c in range(c_in):
            plane = inputs[(i * c_in + c) * height * width:(i * c_in + c + 1) * height * width]
            pooled = outputs[(i * c_in + c) * out_h * out_w:(i * c_in + c + 1) * out_h * out_w]
            for oh in range(out_h):
                for ow in range(out_w):
                    total = real(0.0)
                    for a in range(kh):
                        for b in range(kw):
                            total += plane[(oh * sh + a) * width + ow * sw + b]
                    pooled[oh * out_w + ow] = total * scale


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _global_avg_pool_forward(theta, layer, n_rows, activations):
    """Global average pooling's outputs: each plane's mean."""
    real = theta.dtype.type
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    inputs = activations[in_start:in_start + n_rows * in_size]
    outputs = activations[out_start:out_start + n_rows * out_size]
    area = height * width
    scale = real(1.0 / area)
    for k in range(n_rows * c_in):
        plane = inputs[k * area:(k + 1) * area]
        total = real(0.0)
        for p in range(area):
            total += plane[p]
        outputs[k] = total * scale


# The activations, one function each (a network compiles the ones it uses): a loop per kind, where a test of the kind
# inside the loop kept it from vectorising.

@jit(inline=True)
def _elementwise_span(layer, n_rows):
    """An element-wise layer's (activation's, Flatten's) places: where its input and output blocks start and how
    many elements each holds."""
    return (n_rows * layer[PLAN_IN_ROW], n_rows * layer[PLAN_OUT_ROW],
            n_rows * layer[PLAN_IN_C] * layer[PLAN_IN_H] * layer[PLAN_IN_W])


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _relu_forward(theta, layer, n_rows, activations):
    """ReLU's outputs; as torch, NaN passes through (NaN > 0 is false, so "z if z > 0" would make it 0)."""
    zero = theta.dtype.type(0.0)
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        z = activations[uint64(in_start + k)]
        activations[uint64(out_start + k)] = zero if z <= zero else z


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _tanh_forward(theta, layer, n_rows, activations):
    """tanh's outputs."""
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        activations[uint64(out_start + k)] = math.tanh(activations[uint64(in_start + k)])


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _sigmoid_forward(theta, layer, n_rows, activations):
    """The logistic sigmoid's outputs."""
    one = theta.dtype.type(1.0)
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        activations[uint64(out_start + k)] = one / (one + math.exp(-activations[uint64(in_start + k)]))


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _copy_forward(theta, layer, n_rows, activations):
    """Identity's and Flatten's outputs: the inputs copied."""
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        activations[uint64(out_start + k)] = activations[uint64(in_start + k)]


@jit(inline=True)
def _forward_layer(theta, layer, n_rows, activations, columns):
    """The layer's outputs from its inputs, through its kind's compiled function."""
    kind = layer[PLAN_KIND]
    if kind == DENSE:
        _dense_forward(theta, layer, n_rows, activations)
    elif kind == CONV:
        _conv_forward(theta, layer, n_rows, activations, columns, -1, -1, 0, False, False)
    elif kind == MAX_POOL:
        path = _max_pool_path(layer)
        if path == TILED_2X2:
            _max_pool_forward_2x2(theta, layer, n_rows, activations)
        elif path == TILED:
            _max_pool_forward_tiled(theta, layer, n_rows, activations)
        else:
            _max_pool_forward(theta, layer, n_rows, activations)
    elif kind == AVG_POOL:
        _avg_pool_forward(theta, layer, n_rows, activations)
    elif kind == GLOBAL_AVG_POOL:
        _global_avg_pool_forward(theta, layer, n_rows, activations)
    elif kind == RELU:
        _relu_forward(theta, layer, n_rows, activations)
    elif kind == TANH:
        _tanh_forward(theta, layer, n_rows, activations)
    elif kind == SIGMOID:
        _sigmoid_forward(theta, layer, n_rows, activations)
    else:
        _copy_forward(theta, layer, n_rows, activations)


@on_demand(_layer_signature("real", "real", "real", "bool"))
@jit(internal=True)
def _dense_backward(theta, layer, n_rows, activations, deltas, grad, input_deltas):
    """A dense layer's dW = δᵀ X (W is out × in), db = the column sums of δ; with ``input_deltas``, δ below = δ W."""
    real = theta.dtype.type
    zero = real(0.0)
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    above = deltas[out_start:out_start + n_rows * out_size]
    gemm(deltas, out_start, activations, in_start, grad, weight, out_size, in_size, n_rows, True, False, 1.0,
         0.0)
    if bias >= 0:
        bias_grad = grad[bias:bias + out_size]
        for j in range(out_size):
            bias_grad[j] = zero
        for i in range(n_rows):
            row = above[i * out_size:(i + 1) * out_size]
            for j in range(out_size):
                bias_grad[j] += row[j]
    if input_deltas:
        gemm(deltas, out_start, theta, weight, deltas, in_start, n_rows, in_size, out_size, False, False, 1.0,
             0.0)


@on_demand(_layer_signature("real", "real", "real", "real", "bool", "int", "int", "int", "bool", "bool"))
@jit(internal=True)
def _conv_backward(theta, layer, n_rows, activations, deltas, grad, columns, input_deltas, relu_start, kept, scratch,
                   inputs_inner, outputs_inner):
    """A convolution's dW and db, group of samples by group; with ``input_deltas``, Wᵀδ scattered back by col2im.

    ``relu_start`` ≥ 0: the block of the ReLU that follows (fused, :func:`_fused_relu`): the deltas of the
    convolution's outputs are the ReLU's, where its output is > 0, read from there. ``kept`` ≥ 0: where the forward
    pass kept the batch's im2col matrix in ``columns`` (:func:`_conv_forward`), read there, not built again; the
    scratch starts at ``scratch``, as in the forward pass on the same batch. ``inputs_inner``, ``outputs_inner``: the
    blocks stored samples-innermost, as in the forward pass (their deltas too)."""
    real = theta.dtype.type
    zero = real(0.0)
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    positions = out_h * out_w
    depth = c_in * kh * kw
    group = _group_size(columns.size - scratch, n_rows,
                        _conv_sample_elements(in_size, depth, c_out, positions, kept >= 0))
    product = scratch + group * in_size  # where the group's deltas, out × (positions·samples), go
    matrix = kept if kept >= 0 else product + group * c_out * positions
    if bias >= 0:
        for o in range(c_out):
            grad[bias + o] = zero
    for first in range(0, n_rows, group):
        count = min(group, n_rows - first)
        pitch = count * positions
        sample_start = in_start + first * in_size
        for o in range(c_out):
            row = product + o * pitch
            total = zero
            if outputs_inner:
                # the ReLU's deltas and outputs in the product's order: one run per channel
                source = relu_start + o * pitch
                for k in range(pitch):
                    above, output = deltas[uint64(source + k)], activations[uint64(source + k)]
                    delta = above if output > zero else zero
                    columns[uint64(row + k)] = delta
                    total += delta
                if bias >= 0:
                    grad[bias + o] += total
                continue
            for s in range(count):
                part = zero
                if relu_start < 0:
                    plane = out_start + (first + s) * out_size + o * positions
                    for p in range(positions):
                        delta = deltas[uint64(plane + p)]
                        columns[uint64(row + p * count + s)] = delta
                        part += delta
                else:
                    plane = relu_start + (first + s) * out_size + o * positions
                    for p in range(positions):
                        # both loaded, then chosen: a load under the test would be a branch on the data
                        above, output = deltas[uint64(plane + p)], activations[uint64(plane + p)]
                        delta = above if output > zero else zero
                        columns[uint64(row + p * count + s)] = delta
                        part += delta
                total += part
            if bias >= 0:
                grad[bias + o] += total
        if kept >= 0:
            matrix = kept + first * depth * positions
        else:
            _group_columns(activations, sample_start, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h,
                           out_w, columns, scratch, matrix, inputs_inner)
        # dW (out × in·kh·kw) += δ (out × positions·samples) · columnsᵀ
        gemm(columns, product, columns, matrix, grad, weight, c_out, depth, pitch, False, True, 1.0,
             0.0 if first == 0 else 1.0)
        if input_deltas:
            # the columns are spent: Wᵀδ takes their place, then goes back to the inputs' places
            gemm(theta, weight, columns, product, columns, matrix, depth, pitch, c_out, True, False, 1.0, 0.0)
            # one sample's input deltas, and a block stored so, are samples-innermost already: col2im adds into them
            # in place
            inner = count == 1 or inputs_inner
            below, below_start = (deltas, sample_start) if inner else (columns, scratch)
            for k in range(below_start, below_start + count * in_size):
                below[uint64(k)] = zero
            _col2im_samples_add(columns, matrix, count, c_in, height, width, kh, kw, sh, sw, pt, pl, out_h, out_w,
                                below, below_start)
            if not inner:
                _from_sample_inner(columns, scratch, in_size, count, deltas, sample_start)


@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _max_pool_backward_2x2(theta, layer, n_rows, activations, deltas):
    """A 2×2 max pool's input deltas where its windows tile the plane (:func:`_max_pool_2x2_backward`)."""
    in_start, out_start, planes, height, width, out_h, out_w, kh, kw = _tiled_pool_geometry(layer, n_rows)
    _max_pool_2x2_backward(activations, deltas, in_start, out_start, planes, height, width, out_h, out_w)


@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _max_pool_backward_tiled(theta, layer, n_rows, activations, deltas):
    """A max pool's input deltas where its windows (not 2×2) tile the plane (:func:`_max_pool_tiled_backward`)."""
    in_start, out_start, planes, height, width, out_h, out_w, kh, kw = _tiled_pool_geometry(layer, n_rows)
    _max_pool_tiled_backward(activations, deltas, in_start, out_start, planes, height, width, out_h, out_w, kh, kw)


@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _max_pool_backward(theta, layer, n_rows, activations, deltas):
    """A max pool's input deltas, any windows: each output's delta added where its window's largest entry is."""
    zero = theta.dtype.type(0.0)
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    inputs = activations[in_start:in_start + n_rows * in_size]
    below = deltas[in_start:in_start + n_rows * in_size]
    above = deltas[out_start:out_start + n_rows * out_size]
    for k in range(n_rows * in_size):
        below[k] = zero
    for i in range(n_rows):
        for c in range(c_in):
            plane = inputs[(i * c_in + c) * height * width:(i * c_in + c + 1) * height * width]
            plane_below = below[(i * c_in + c) * height * width:(i * c_in + c + 1) * height * width]
            pooled = above[(i * c_in + c) * out_h * out_w:(i * c_in + c + 1) * out_h * out_w]
            for oh in range(out_h):
                for ow in range(out_w):
                    where = _window_max(plane, height, width, kh, kw, oh * sh - pt, ow * sw - pl)[1]
                    plane_below[where] += pooled[oh * out_w + ow]


@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _avg_pool_backward(theta, layer, n_rows, activations, deltas):
    """An average pool's input deltas: each output's delta shared evenly over its window."""
    real = theta.dtype.type
    zero = real(0.0)
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    below = deltas[in_start:in_start + n_rows * in_size]
    above = deltas[out_start:out_start + n_rows * out_size]
    scale = real(1.0 / (kh * kw))
    for k in range(n_rows * in_size):
        below[k] = zero
    for i in range(n_rows):
        for c in range(c_in):
            plane_below = below[(i * c_in + c) * height * width:(i * c_in + c + 1) * height * width]
            pooled = above[(i * c_in + c) * out_h * out_w:(i * c_in + c + 1) * out_h * out_w]
            for oh in range(out_h):
                for ow in range(out_w):
                    delta = pooled[oh * out_w + ow]
                    for a in range(kh):
                        for b in range(kw):
                            plane_below[(oh * sh + a) * width + ow * sw + b] += delta * scale


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _global_avg_pool_backward(theta, layer, n_rows, deltas):
    """Global average pooling's input deltas: each output's delta shared evenly over its plane."""
    real = theta.dtype.type
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _layer_geometry(layer, n_rows)
    below = deltas[in_start:in_start + n_rows * in_size]
    above = deltas[out_start:out_start + n_rows * out_size]
    area = height * width
    scale = real(1.0 / area)
    for k in range(n_rows * c_in):
        share = above[k] * scale
        plane_below = below[k * area:(k + 1) * area]
        for p in range(area):
            plane_below[p] = share


# The activations' input deltas, their derivatives written in terms of their outputs.

@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _relu_backward(theta, layer, n_rows, activations, deltas):
    """ReLU's input deltas: its output deltas where its output is > 0."""
    zero = theta.dtype.type(0.0)
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        a = activations[uint64(out_start + k)]
        deltas[uint64(in_start + k)] = deltas[uint64(out_start + k)] if a > zero else zero


@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _tanh_backward(theta, layer, n_rows, activations, deltas):
    """tanh's input deltas: δ·(1 − a²)."""
    one = theta.dtype.type(1.0)
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        a = activations[uint64(out_start + k)]
        deltas[uint64(in_start + k)] = deltas[uint64(out_start + k)] * (one - a * a)


@on_demand(_layer_signature("real", "real"))
@jit(internal=True)
def _sigmoid_backward(theta, layer, n_rows, activations, deltas):
    """The sigmoid's input deltas: δ·a(1 − a)."""
    one = theta.dtype.type(1.0)
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        a = activations[uint64(out_start + k)]
        deltas[uint64(in_start + k)] = deltas[uint64(out_start + k)] * (a * (one - a))


@on_demand(_layer_signature("real"))
@jit(internal=True)
def _copy_backward(theta, layer, n_rows, deltas):
    """Identity's and Flatten's input deltas: the output deltas copied."""
    in_start, out_start, count = _elementwise_span(layer, n_rows)
    for k in range(count):
        deltas[uint64(in_start + k)] = deltas[uint64(out_start + k)]


@jit(inline=True)
def _backward_layer(theta, layer, n_rows, activations, deltas, grad, columns, input_deltas):
    """Fill the layer's part of ``grad`` from the deltas of its outputs; with ``input_deltas``, those of its inputs."""
    kind = layer[PLAN_KIND]
    if kind == DENSE:
        _dense_backward(theta, layer, n_rows, activations, deltas, grad, input_deltas)
    elif kind == CONV:
        _conv_backward(theta, layer, n_rows, activations, deltas, grad, columns, input_deltas, -1, -1, 0, False,
                       False)
    elif not input_deltas:
        return
    elif kind == MAX_POOL:
        path = _max_pool_path(layer)
        if path == TILED_2X2:
            _max_pool_backward_2x2(theta, layer, n_rows, activations, deltas)
        elif path == TILED:
            _max_pool_backward_tiled(theta, layer, n_rows, activations, deltas)
        else:
            _max_pool_backward(theta, layer, n_rows, activations, deltas)
    elif kind == AVG_POOL:
        _avg_pool_backward(theta, layer, n_rows, activations, deltas)
    elif kind == GLOBAL_AVG_POOL:
        _global_avg_pool_backward(theta, layer, n_rows, deltas)
    elif kind == RELU:
        _relu_backward(theta, layer, n_rows, activations, deltas)
    elif kind == TANH:
        _tanh_backward(theta, layer, n_rows, activations, deltas)
    elif kind == SIGMOID:
        _sigmoid_backward(theta, layer, n_rows, activations, deltas)
    else:
        _copy_backward(theta, layer, n_rows, deltas)


@jit(inline=True)
def _copy_inputs(inputs, n_rows, plan, activations):
    size = n_rows * plan[0, PLAN_IN_C] * plan[0, PLAN_IN_H] * plan[0, PLAN_IN_W]
    block = activations[:size]
    for k in range(size):
        block[k] = inputs[k]


@jit(inline=True)
def _output_block(n_rows, plan, workspace):
    last = plan[plan.shape[0] - 1]
    size = last[PLAN_OUT_C] * last[PLAN_OUT_H] * last[PLAN_OUT_W]
    start = n_rows * last[PLAN_OUT_ROW]
    return workspace[start:start + n_rows * size], size


@jit(inline=True)
def _fused_relu(plan, layer):
    """Whether ``layer`` is a convolution followed by a ReLU, which the passes take as one layer: the convolution's
    outputs go through the ReLU as they are written, and its deltas are the ReLU's where the ReLU's output is > 0."""
    return 0 <= layer < plan.shape[0] - 1 and plan[layer, PLAN_KIND] == CONV and plan[layer + 1, PLAN_KIND] == RELU


@jit(inline=True)
def _conv_group(plan, layer, n_rows, columns_size, scratch):
    """How many samples convolution ``layer`` takes a product (:func:`_group_size`), with ``columns``' scratch at
    ``scratch`` (:func:`_kept_elements`: > 0 where the matrices are kept)."""
    in_size, depth, positions, c_out = _conv_sizes(plan[layer])
    return _group_size(columns_size - scratch, n_rows,
                       _conv_sample_elements(in_size, depth, c_out, positions, scratch > 0))


@by_symbol
@jit(internal=True)
def _inner_block_after(plan, layer, n_rows, columns_size, scratch):
    """Whether the block after convolution ``layer`` and its fused ReLU is stored samples-innermost, (c·h·w) ×
    n_rows, not row by row: where the next layer is a convolution too and both take the whole batch in one group, the
    block is written and read only by the two (the kept matrices, else im2col, read the inputs), each of which would
    otherwise turn it (and its deltas) samples-innermost for its product and back, the product's order being the
    first's output and the second's input. Compiled once, called by symbol, as :func:`_kept_elements`."""
    return (n_rows > 1 and layer >= 0 and _fused_relu(plan, layer) and layer + 2 < plan.shape[0]
            and plan[layer + 2, PLAN_KIND] == CONV and _conv_group(plan, layer, n_rows, columns_size, scratch) == n_rows
            and _conv_group(plan, layer + 2, n_rows, columns_size, scratch) == n_rows)


@by_symbol
@jit(internal=True)
def _forward(theta, inputs, n_rows, plan, activations, columns):
    """Every layer's outputs on ``n_rows`` samples, the inputs first copied into ``activations``' first block."""
    _copy_inputs(inputs, n_rows, plan, activations)
    scratch = _kept_elements(plan, n_rows, columns.size)
    kept = 0  # where the next convolution's kept matrix starts
    # whether the last convolution's output block is samples-innermost: then the next convolution is the one it feeds
    # (:func:`_inner_block_after`), whose input block it is; carried, so that the test is compiled in one place
    inner = False
    for layer in range(plan.shape[0]):
        if _fused_relu(plan, layer - 1):
            continue  # written by the convolution before
        if plan[layer, PLAN_KIND] == CONV:
            relu_start = n_rows * plan[layer + 1, PLAN_OUT_ROW] if _fused_relu(plan, layer) else -1
            inputs_inner, inner = inner, _inner_block_after(plan, layer, n_rows, columns.size, scratch)
            _conv_forward(theta, plan[layer], n_rows, activations, columns, relu_start, kept if scratch > 0 else -1,
                          scratch, inputs_inner, inner)
            in_size, depth, positions, c_out = _conv_sizes(plan[layer])
            kept += n_rows * depth * positions
        else:
            _forward_layer(theta, plan[layer], n_rows, activations, columns)


@by_symbol
@jit(internal=True)
def _loss(outputs, targets, n_rows, n_outputs, loss, output_deltas, with_deltas):
    """The loss of the output block against the targets (float64); with ``with_deltas``, d loss / d outputs too."""
    real = output_deltas.dtype.type
    total = 0.0
    if loss == CROSS_ENTROPY:
        for i in range(n_rows):
            z = outputs[i * n_outputs:(i + 1) * n_outputs]
            y = targets[i * n_outputs:(i + 1) * n_outputs]
            largest = float(z[0])
            for j in range(n_outputs):
                largest = max(largest, float(z[j]))
            exponentials, mass = 0.0, 0.0
            for j in range(n_outputs):
                exponentials += math.exp(float(z[j]) - largest)
                mass += float(y[j])
            log_normaliser = largest + math.log(exponentials)
            for j in range(n_outputs):
                total += float(y[j]) * (log_normaliser - float(z[j]))
            if with_deltas:
                # d/dz of Σ y (log Σ e^z − z) is softmax(z)·Σy − y, then the mean over rows
                row_deltas = output_deltas[i * n_outputs:(i + 1) * n_outputs]
                for j in range(n_outputs):
                    row_deltas[j] = real((math.exp(float(z[j]) - log_normaliser) * mass - float(y[j])) / n_rows)
        return total / n_rows
    count = n_rows * n_outputs
    if loss == BINARY_CROSS_ENTROPY:
        for k in range(count):
            z, y = float(outputs[k]), float(targets[k])
            # −y log σ(z) − (1 − y) log(1 − σ(z)) = max(z, 0) − z·y + log(1 + e^−|z|): e^−|z| ≤ 1 for either sign
            small = math.exp(-abs(z))
            total += max(z, 0.0) - z * y + math.log1p(small)
            if with_deltas:
                sigma = 1.0 / (1.0 + small) if z >= 0.0 else small / (1.0 + small)
                output_deltas[k] = real((sigma - y) / count)
        return total / count
    for k in range(count):
        difference = float(outputs[k]) - float(targets[k])
        total += difference * difference
        if with_deltas:
            output_deltas[k] = real(2.0 * difference / count)
    return total / count


@by_symbol
@jit(internal=True)
def _backward(theta, n_rows, plan, activations, deltas, grad, columns):
    """Every layer's part of ``grad``, from the last block's deltas (the loss's) down to the first layer's."""
    scratch = _kept_elements(plan, n_rows, columns.size)
    kept = scratch  # where the last kept matrix ends
    # whether the input block of the convolution taken last is samples-innermost: then this convolution is the one
    # that feeds it (:func:`_inner_block_after`), whose output block it is; carried, as in :func:`_forward`
    inner = False
    for layer in range(plan.shape[0] - 1, -1, -1):
        if _fused_relu(plan, layer - 1):
            continue  # taken with the convolution before
        if plan[layer, PLAN_KIND] == CONV:
            in_size, depth, positions, c_out = _conv_sizes(plan[layer])
            kept -= n_rows * depth * positions
            relu_start = n_rows * plan[layer + 1, PLAN_OUT_ROW] if _fused_relu(plan, layer) else -1
            outputs_inner, inner = inner, _inner_block_after(plan, layer - 2, n_rows, columns.size, scratch)
            _conv_backward(theta, plan[layer], n_rows, activations, deltas, grad, columns, layer > 0, relu_start,
                           kept if scratch > 0 else -1, scratch, inner, outputs_inner)
        else:
            _backward_layer(theta, plan[layer], n_rows, activations, deltas, grad, columns, layer > 0)


@jit
def forward(theta, inputs, n_rows, plan, activations, columns):
    """The network on ``n_rows`` samples (``inputs`` flat, row-major); return the (n_rows × outputs) output block."""
    _forward(theta, inputs, n_rows, plan, activations, columns)
    outputs, size = _output_block(n_rows, plan, activations)
    return outputs.reshape((n_rows, size))


@jit
def loss_only(theta, inputs, targets, n_rows, plan, loss, activations, columns):
    """The loss on ``n_rows`` samples (``targets`` flat, n_rows × outputs), as a float64."""
    _forward(theta, inputs, n_rows, plan, activations, columns)
    outputs, size = _output_block(n_rows, plan, activations)
    return _loss(outputs, targets, n_rows, size, loss, activations, False)


@jit(inline=True)
def loss_and_gradient_inlined(theta, inputs, targets, n_rows, plan, loss, grad, activations, deltas, columns):
    """:func:`loss_and_gradient` inlined into its caller (the compiled epoch's callback,
    :func:`fastgd.kernels.train.network_entry`): a few calls by symbol, to the passes every entry point shares."""
    _forward(theta, inputs, n_rows, plan, activations, columns)
    outputs, size = _output_block(n_rows, plan, activations)
    output_deltas, _ = _output_block(n_rows, plan, deltas)
    value = _loss(outputs, targets, n_rows, size, loss, output_deltas, True)
    _backward(theta, n_rows, plan, activations, deltas, grad, columns)
    return value


@jit
def loss_and_gradient(theta, inputs, targets, n_rows, plan, loss, grad, activations, deltas, columns):
    """Forward and backward pass on ``n_rows`` samples: fill ``grad`` (θ's layout) and return the loss (float64)."""
    return loss_and_gradient_inlined(theta, inputs, targets, n_rows, plan, loss, grad, activations, deltas, columns)


@jit
def predict_in_chunks(theta, inputs, plan, activations, columns, chunk_size, out):
    """The outputs for every row of ``inputs`` (n × input size) into ``out`` (n × outputs), chunk by chunk."""
    n_samples = inputs.shape[0]
    for start in range(0, n_samples, chunk_size):
        stop = min(start + chunk_size, n_samples)
        rows = stop - start
        _forward(theta, inputs[start:stop].reshape(rows * inputs.shape[1]), rows, plan, activations, columns)
        outputs, size = _output_block(rows, plan, activations)
        # a loop, where ``out[start:stop] = ...`` would compile Numba's shape-mismatch message (its strings)
        for row in range(rows):
            for column in range(size):
                out[start + row, column] = outputs[row * size + column]
    return out


@jit(inline=True)
def _weight_size(layer):
    """Elements of ``layer``'s weight (0 without one): a dense layer's out × in, a convolution's out·in·kh·kw."""
    if layer[PLAN_WEIGHT] < 0:
        return 0
    if layer[PLAN_KIND] == CONV:
        return layer[PLAN_OUT_C] * layer[PLAN_IN_C] * layer[PLAN_KERNEL_H] * layer[PLAN_KERNEL_W]
    return layer[PLAN_OUT_C] * layer[PLAN_OUT_H] * layer[PLAN_OUT_W] * layer[PLAN_IN_C] * layer[PLAN_IN_H] \
        * layer[PLAN_IN_W]


@jit
def penalty(theta, plan, alpha, n_rows):
    """scikit-learn's L2 penalty α/(2m)·ΣW² over every layer's weight (not the biases), m = ``n_rows``; float64."""
    if alpha == 0.0:
        return 0.0
    squares = 0.0
    for layer in range(plan.shape[0]):
        start = plan[layer, PLAN_WEIGHT]
        squares += sum_of_squares(theta, start, start + _weight_size(plan[layer]))
    return 0.5 * alpha * squares / n_rows


@jit
def add_penalty_gradient(theta, plan, alpha, n_rows, grad):
    """Add :func:`penalty`'s gradient, α/m·W, to the weights' places of ``grad``."""
    if alpha == 0.0:
        return
    scale = grad.dtype.type(alpha / n_rows)
    for layer in range(plan.shape[0]):
        start = plan[layer, PLAN_WEIGHT]
        for k in range(start, start + _weight_size(plan[layer])):
            grad[k] += scale * theta[k]


def multiply_adds_per_sample(plan):
    """A sample's forward pass in multiply-adds: each dense layer's in·out, each convolution's
    out·(in·kh·kw)·out_h·out_w, and one per output place of the other layers (an estimate of its work)."""
    plan = np.asarray(plan)
    total = 0
    for layer in plan:
        out_places = int(layer[PLAN_OUT_C] * layer[PLAN_OUT_H] * layer[PLAN_OUT_W])
        in_places = int(layer[PLAN_IN_C] * layer[PLAN_IN_H] * layer[PLAN_IN_W])
        if layer[PLAN_KIND] == DENSE:
            total += in_places * out_places
        elif layer[PLAN_KIND] == CONV:
            total += out_places * int(layer[PLAN_IN_C] * layer[PLAN_KERNEL_H] * layer[PLAN_KERNEL_W])
        else:
            total += max(out_places, in_places)
    return total


def workspace_elements(plan, n_rows):
    """(elements of ``activations`` and of ``deltas``, elements of ``columns``) for batches of ``n_rows``.

    ``columns`` holds every convolution's im2col matrix for all ``n_rows`` samples, kept from the forward pass for
    the backward (:func:`_kept_elements`), where they take at most :data:`KEPT_BUDGET` elements; then a scratch for
    the largest convolution's inputs and product (and im2col matrix, where not kept) for a group of samples
    (:func:`_conv_sample_elements` a sample): all ``n_rows`` where that fits in :data:`COLUMNS_BUDGET` elements,
    else fewer, at least :data:`MIN_GROUP_SAMPLES` (or the batch, where smaller).
    """
    plan = np.asarray(plan)
    last = plan[-1]
    n_rows = int(n_rows)
    per_row = int(last[PLAN_OUT_ROW] + last[PLAN_OUT_C] * last[PLAN_OUT_H] * last[PLAN_OUT_W])
    sizes = [_conv_sizes.py_func(layer) for layer in plan if layer[PLAN_KIND] == CONV]
    if not sizes:
        return n_rows * per_row, 1
    kept = sum(n_rows * int(depth * positions) for _, depth, positions, _ in sizes)
    keep = kept <= KEPT_BUDGET
    per_sample = max(int(_conv_sample_elements.py_func(in_size, depth, c_out, positions, keep))
                     for in_size, depth, positions, c_out in sizes)
    group = max(1, min(n_rows, max(COLUMNS_BUDGET // per_sample, MIN_GROUP_SAMPLES)))
    return n_rows * per_row, (kept if keep else 0) + group * per_sample


def _row_functions(row):
    """(forward, backward) compiled functions of a plan row: what :func:`_forward_layer` and
    :func:`_backward_layer` call for it."""
    kind = int(row[PLAN_KIND])
    if kind == MAX_POOL:
        path = _max_pool_path_python(row)
        return {GENERAL: (_max_pool_forward, _max_pool_backward),
                TILED: (_max_pool_forward_tiled, _max_pool_backward_tiled),
                TILED_2X2: (_max_pool_forward_2x2, _max_pool_backward_2x2)}[path]
    return {DENSE: (_dense_forward, _dense_backward), CONV: (_conv_forward, _conv_backward),
            AVG_POOL: (_avg_pool_forward, _avg_pool_backward),
            GLOBAL_AVG_POOL: (_global_avg_pool_forward, _global_avg_pool_backward),
            RELU: (_relu_forward, _relu_backward), TANH: (_tanh_forward, _tanh_backward),
            SIGMOID: (_sigmoid_forward, _sigmoid_backward)}.get(kind, (_copy_forward, _copy_backward))


def kind_functions(plan, backward=True):
    """The layer kinds' compiled functions that the passes call for ``plan``: each row's forward (and with
    ``backward``, its backward; the first layer's only where it has parameters), once each; a ReLU after a
    convolution is the convolution's (:func:`_fused_relu`)."""
    plan = np.asarray(plan)
    functions = []
    for index, row in enumerate(plan):
        if _fused_relu.py_func(plan, index - 1):
            continue
        forward_function, backward_function = _row_functions(row)
        wanted = [forward_function]
        if backward and (index > 0 or row[PLAN_KIND] in (DENSE, CONV)):
            wanted.append(backward_function)
        functions += [function for function in wanted if function not in functions]
    return functions


# (the plan's bytes and shape, dtype, backward) of each plan prepare() has prepared in this process
_PREPARED_PLANS = set()


def prepare(plan, dtype, backward=True):
    """Compile (or load from Numba's cache) the layer kinds ``plan`` uses, for θ's ``dtype``: its forward passes and
    with ``backward`` its backward passes (:func:`kind_functions`), once per process; call before compiled code runs
    the plan. The passes call each kind through a slot that this fills (:func:`fastgd.kernels.linking.on_demand`):
    a kind left unprepared is compiled when compiled code first calls it, from whatever thread. A network's methods
    call it at every call (each ``loss_grad`` of a training loop): a plan prepared before returns at once."""
    plan = np.asarray(plan)
    key = (plan.tobytes(), plan.shape, np.dtype(dtype).name, bool(backward))
    if key in _PREPARED_PLANS:
        return
    for function in kind_functions(plan, backward):
        linking.prepare(function, dtype)
    _PREPARED_PLANS.add(key)
