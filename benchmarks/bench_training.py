"""MLP training throughput and memory: fastgd's compiled epochs beside NumPy, scikit-learn, PyTorch and JAX + optax.

Every implementation trains the same network (``baselines.Trainer``): the data set's features,
one hidden layer of ``HIDDEN`` ReLU units (``NetworkEpoch``: the hidden layers of
``common.NETWORKS``), softmax and cross-entropy (classification) or the identity and half the
squared error (regression), no L2 penalty, the same initial weights and the rule's learning
rate from ``baselines.LEARNING_RATES``.
"""

import os

from fastgd import baselines

from benchmarks import common

HIDDEN = 32
BATCH_SIZES = [1, 32, 256, "full"]
# the sets whose batch sizes are benchmarked: a small one, where per-step overhead decides, and a large one
BATCH_SIZE_DATASETS = ["digits", common.LARGE_SYNTHETIC]


def epoch_trainer(data_dir, dataset, batch_size, rule, dtype, implementation):
    """A warmed trainer (``common.warmed_trainer``); NotImplementedError for a batch as large as the set."""
    data = common.load_dataset(dataset, data_dir)
    n_samples = data.X_train.shape[0]
    if batch_size == "full":
        batch_size = n_samples
    elif batch_size >= n_samples:
        raise NotImplementedError(f"{dataset} has {n_samples} training rows: batch {batch_size} is the full batch")
    return common.warmed_trainer(implementation, data, rule, HIDDEN, batch_size, dtype)


class Epoch:
    """Training samples per second on every data set, every implementation, Adam, batches of 32.

    ``track_samples_per_second`` times a fit of about ``common.TRACK_SECONDS`` (at least one
    epoch; ``baselines.Trainer.seconds_per_epoch``, as the comparison report times it) the way
    users of each implementation train (for scikit-learn one ``fit`` of that many epochs), so
    per-call overheads count once per fit, as they do in use. An epoch whose loss is not finite
    fails the benchmark: a diverged epoch times nothing. The large synthetic set is 100,000 × 100
    (75,000 training rows, two classes), generated once per run by the first process that needs it.
    Other batch sizes: ``EpochBatchSize``; other rules' updates: ``bench_optim.UpdateStep``.
    """

    params = [common.DATASETS, [32], ["adam"], common.DTYPES, list(baselines.TRAINERS)]
    param_names = ["dataset", "batch_size", "rule", "dtype", "implementation"]
    timeout = 300

    def setup_cache(self):
        return os.getcwd()  # asv's scratch directory for this run: common.load_dataset writes the large set there

    def setup(self, data_dir, dataset, batch_size, rule, dtype, implementation):
        self.trainer = epoch_trainer(data_dir, dataset, batch_size, rule, dtype, implementation)

    def track_samples_per_second(self, data_dir, dataset, batch_size, rule, dtype, implementation):
        return self.trainer.n_samples / self.trainer.seconds_per_epoch(common.TRACK_SECONDS)

    track_samples_per_second.unit = "samples/s (higher is better)"


class EpochBatchSize(Epoch):
    """``Epoch`` at batch sizes 1, 256 and the full set (batch gradient descent), float64, on digits and the large set.

    Below batches of 32 the learning rate shrinks in proportion (``baselines.learning_rate``).
    Batch 1 on the large set runs fastgd and JAX alone: an epoch of 75,000 single-sample steps
    takes 5 to 30 s in the other baselines, and digits at batch 1 shows the same regime.
    """

    params = [BATCH_SIZE_DATASETS, [1, 256, "full"], ["adam"], ["float64"], list(baselines.TRAINERS)]
    setup_cache = Epoch.setup_cache  # one function: asv keys its cache on it, so the large set is written once

    def setup(self, data_dir, dataset, batch_size, rule, dtype, implementation):
        if dataset == common.LARGE_SYNTHETIC and batch_size == 1 and implementation not in ("fastgd", "jax"):
            raise NotImplementedError("batch 1 on the large set: fastgd and JAX only (see the docstring)")
        super().setup(data_dir, dataset, batch_size, rule, dtype, implementation)


class EpochMatmulRate:
    """The regime where matrix products decide: digits, 64-256-10, batches of 256, Adam, fastgd.

    ``track_matmul_rate`` is the FLOP rate of the epoch's matrix products (forward X·W, backward
    Aᵀ·δ and δ·Wᵀ), counted over the whole epoch (shuffle, activations, loss and update
    included), to hold against ``bench_machine.MatmulPeak``.
    """

    params = [common.DTYPES]
    param_names = ["dtype"]
    warmup_time = 0.0
    timeout = 120

    def setup(self, dtype):
        data = common.load_dataset("digits")
        self.trainer = common.warmed_trainer("fastgd", data, "adam", 256, 256, dtype)
        self.flops = baselines.epoch_matmul_flops(self.trainer.n_samples, self.trainer.layer_sizes)

    def time_epoch(self, dtype):
        baselines.finite(self.trainer.epoch())

    def track_matmul_rate(self, dtype):
        return self.flops / self.trainer.seconds_per_epoch(common.TRACK_SECONDS) / 1e9

    track_matmul_rate.unit = "GFLOP/s (higher is better)"


class NetworkEpoch:
    """Training at the network sizes of issue 15, every implementation, Adam.

    The networks (``common.NETWORKS``, labelled layer sizes/batch size): ReLU MLPs
    100-256-256-10 with batches of 64, 256-512-512-10 with 256 and 256-1024-1024-10 with 1024,
    float32, on synthetic 10-class sets (``make_classification``, 20,000 training rows,
    standardised); and 64-32-10 with batches of 32 on digits, float64.
    ``track_samples_per_second`` times a fit of about ``TRACK_SCALE × common.TRACK_SECONDS``
    (at least one epoch) the way users of each implementation train, as ``Epoch`` does.

    An epoch of 256-1024-1024-10 takes 0.6 s in fastgd and in PyTorch, 0.65 s in JAX, 0.8 s
    in NumPy and 1.1 to 1.4 s in scikit-learn on two cores, and setup takes 2 to 3.5 s (a new
    trainer after a warm-up; JAX's compiles its epoch then): a combination took 4 to 16 s here
    with a warm Numba cache; the timeout leaves room for a cold one. Each synthetic set is
    generated once per run, by the first process that needs it (``common.load_dataset``).
    """

    params = [list(common.NETWORKS), list(baselines.TRAINERS)]
    param_names = ["network", "implementation"]
    timeout = 180
    # the largest network's epoch outlasts TRACK_SECONDS: a longer fit averages more than one epoch
    TRACK_SCALE = 4

    def setup_cache(self):
        return os.getcwd()  # asv's scratch directory for this run: common.load_dataset writes the sets there

    def setup(self, data_dir, network, implementation):
        spec = common.NETWORKS[network]
        data = common.load_network_data(network, data_dir)
        self.trainer = common.warmed_trainer(implementation, data, "adam", spec.hidden, spec.batch_size, spec.dtype)

    def track_samples_per_second(self, data_dir, network, implementation):
        return self.trainer.n_samples / self.trainer.seconds_per_epoch(self.TRACK_SCALE * common.TRACK_SECONDS)

    track_samples_per_second.unit = "samples/s (higher is better)"


class CnnEpoch:
    """A declared CNN's epoch (issue 26): fastgd beside PyTorch and JAX + optax, Adam, float32, one thread each.

    The networks (``common.CNNS``, labelled network/batch size): the digits CNN
    (``networks.known("digits_cnn")``, 6,090 parameters) on digits' 1,347 training rows in batches
    of 64, and DeepOBS's ``mnist_2c2d`` (3.3 million parameters) on four batches of 128 standard
    normal 28×28 inputs. All start from the same θ; fastgd trains with ``Training``, PyTorch with
    ``nn.Sequential`` and ``torch.optim.Adam``, JAX with a jitted epoch of ``lax.scan`` over its batches and
    ``optax.adam`` (``common.CnnEpochs``). ``track_samples_per_second``
    is the training rows over the median epoch of about ``common.TRACK_SECONDS`` (one epoch at
    least), after a warm-up epoch in ``setup`` that compiles (or loads) fastgd's pass.
    """

    params = [list(common.CNNS), list(common.CNN_IMPLEMENTATIONS)]
    param_names = ["network", "implementation"]
    timeout = 180

    def setup(self, network, implementation):
        self.epochs = common.warmed_cnn_epochs(network, implementation)

    def track_samples_per_second(self, network, implementation):
        return self.epochs.n_samples / self.epochs.seconds_per_epoch(common.TRACK_SECONDS)

    track_samples_per_second.unit = "samples/s (higher is better)"


class NetworkGemmShare:
    """How near fastgd's epoch comes to the matrix-product peak, at the network sizes of ``NetworkEpoch``.

    ``track_gemm_share`` is the epoch's matrix-product FLOPs (forward X·W, backward Aᵀ·δ and
    δ·Wᵀ; ``baselines.epoch_matmul_flops``) over fastgd's seconds per epoch (the whole epoch:
    shuffle, activations, loss and Adam's update included), as a share of the 2048² matrix
    product's FLOP rate in the network's dtype through the faster of NumPy's BLAS and MKL
    (``baselines.peak_gemm_rate``: the passes run on MKL where it is installed, and a share against
    the slower BLAS's peak overstates itself), measured in the same process before and after the
    epochs, the higher of the two: the peak drifts
    by a fifth within minutes on a shared machine, and a share against a low one overstates itself
    (``network_speed.py`` takes the highest of its run). 1.0 would be an epoch that is all matrix products
    at the peak; small batches (digits' 32) stay far below it, and below the peak of their own
    products too (``bench_machine.NetworkMatmulPeak``: the same products alone).

    ``track_epoch_over_floor``: fastgd's epoch over its floor, its matrix products alone plus its
    rule's steps alone with the pass, BLAS and threads the epoch takes
    (``FastgdTrainer.floor_seconds``); 1.0 would be an epoch with nothing but those. A ratio of two
    times taken in one process, steadier on a shared machine than either.
    """

    params = [list(common.NETWORKS)]
    param_names = ["network"]
    timeout = 180

    setup_cache = NetworkEpoch.setup_cache  # one function: asv keys its cache on it, so the data is written once

    def setup(self, data_dir, network):
        spec = common.NETWORKS[network]
        data = common.load_network_data(network, data_dir)
        self.trainer = common.warmed_trainer("fastgd", data, "adam", spec.hidden, spec.batch_size, spec.dtype)
        self.flops = baselines.epoch_matmul_flops(self.trainer.n_samples, self.trainer.layer_sizes)
        self.dtype = spec.dtype

    def track_gemm_share(self, data_dir, network):
        peak_before, _ = baselines.peak_gemm_rate(self.dtype, common.TRACK_SECONDS)
        seconds = self.trainer.seconds_per_epoch(NetworkEpoch.TRACK_SCALE * common.TRACK_SECONDS)
        return self.flops / seconds / max(peak_before, baselines.peak_gemm_rate(self.dtype, common.TRACK_SECONDS)[0])

    track_gemm_share.unit = "fraction of the GEMM peak (higher is better)"

    def track_epoch_over_floor(self, data_dir, network):
        seconds = self.trainer.seconds_per_epoch(NetworkEpoch.TRACK_SCALE * common.TRACK_SECONDS)
        floor = self.trainer.floor_seconds(common.TRACK_SECONDS)
        return seconds / (floor["products"] + floor["steps"])

    track_epoch_over_floor.unit = "epoch / its products and steps alone (lower is better)"


class FitMemory:
    """Peak resident memory of a process that builds a trainer and trains one epoch (batch 256, Adam) on the large
    synthetic set.

    asv's peakmem is the whole process's: the imports and the loaded data count too (the data
    comes from a file written once, so its generation does not). The Numba cache is filled in
    ``setup_cache``, in another process, so that the warm-up here loads machine code instead of
    running LLVM, whose memory would swamp the figure.
    """

    params = [list(baselines.TRAINERS), common.DTYPES]
    param_names = ["implementation", "dtype"]
    timeout = 300

    def setup_cache(self):
        data = common.load_dataset(common.LARGE_SYNTHETIC, os.getcwd())
        for dtype in common.DTYPES:
            common.warm_up("fastgd", data, "adam", HIDDEN, 256, dtype)
        return os.getcwd()

    setup_cache.timeout = 300

    def setup(self, data_dir, implementation, dtype):
        self.data = common.load_dataset(common.LARGE_SYNTHETIC, data_dir)
        common.warm_up(implementation, self.data, "adam", HIDDEN, 256, dtype)

    def peakmem_fit(self, data_dir, implementation, dtype):
        baselines.TRAINERS[implementation](self.data, "adam", HIDDEN, 256, dtype).epoch()


class FitFixedCost:
    """The share of a 20-epoch ``MLPClassifier.fit`` on digits that is not its epochs (``common.fit_fixed_cost``):
    checking the input, reading the labels, building the network, the optimizer and the trainer.

    ``track_fixed_share`` is the fit less 20 epochs of a ``Training`` alone, over the fit;
    ``track_beyond_compiled_share`` the fit less its compiled epochs' own seconds, over the fit
    (stricter: each epoch's Python around the compiled call counts too).
    """

    timeout = 120

    def setup(self):
        self.costs = common.fit_fixed_cost()

    def track_fixed_share(self):
        return self.costs["fixed"] / self.costs["fit"]

    track_fixed_share.unit = "fraction of the fit (lower is better)"

    def track_beyond_compiled_share(self):
        return self.costs["beyond_compiled"] / self.costs["fit"]

    track_beyond_compiled_share.unit = "fraction of the fit (lower is better)"
