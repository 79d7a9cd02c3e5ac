"""A two-minute tour: every update rule trains the same MLP on digits, side by side with scikit-learn.

    python -m fastgd.demo
"""

import time
import warnings

import numpy as np

from fastgd import MLPClassifier, datasets, optim

# a learning rate per rule that trains this network reasonably in 30 epochs
LEARNING_RATES = {"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.05, "rmsprop": 1e-3,
                  "adadelta": 1.0, "adam": 3e-3, "amsgrad": 3e-3, "adamax": 5e-3, "nadam": 3e-3, "adamw": 3e-3,
                  "lion": 3e-4}


def main(n_epochs=30):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    data = datasets.load("digits")
    settings = dict(hidden_layer_sizes=(32,), batch_size=32, max_iter=n_epochs, tol=0.0, random_state=0)
    print(f"digits: {data.X_train.shape[0]} training samples, MLP 64-32-10, batch 32, {n_epochs} epochs\n")
    print(f"{'rule':>10} {'lr':>7} {'train loss':>10} {'test acc':>8} {'ms/epoch':>9}")
    warnings.simplefilter("ignore", ConvergenceWarning)
    rows = []
    for name in optim.OPTIMIZERS:
        clf = MLPClassifier(optimizer=name, learning_rate_init=LEARNING_RATES[name], **settings)
        clf.fit(data.X_train, data.y_train)
        per_epoch = np.median(np.diff([0.0, *clf.history_.seconds])[1:]) * 1e3
        rows.append((clf.loss_curve_[-1], name))
        print(f"{name:>10} {LEARNING_RATES[name]:>7g} {clf.loss_curve_[-1]:>10.4f} "
              f"{clf.score(data.X_test, data.y_test):>8.3f} {per_epoch:>9.3f}")
    start = time.perf_counter()
    reference = SklearnMLP(solver="adam", learning_rate_init=LEARNING_RATES["adam"], **settings)
    reference.fit(data.X_train, data.y_train)
    per_epoch = (time.perf_counter() - start) / reference.n_iter_ * 1e3
    print(f"{'sklearn':>10} {LEARNING_RATES['adam']:>7g} {reference.loss_curve_[-1]:>10.4f} "
          f"{reference.score(data.X_test, data.y_test):>8.3f} {per_epoch:>9.3f}   (scikit-learn's MLP, adam)")
    print(f"\nlowest training loss: {min(rows)[1]}")


if __name__ == "__main__":
    main()
