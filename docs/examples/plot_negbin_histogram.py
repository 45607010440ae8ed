"""
A negative-binomial mixture over a histogram of counts
======================================================

Counts of one gene in cells of three types: most cells express it a little,
some a lot. :class:`skem.NegBinMixture` fits a mixture of negative binomials
(variance ``mu + phi mu**2``); with ``dispersion=0`` it is a Poisson mixture,
which cannot absorb the extra spread of each group and needs more components
to describe the same histogram.
"""

# %%
# Simulate counts from a known mixture
# ------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import nbinom, poisson

from skem import NegBinMixture
from skem.datasets import make_negbin_mixture

true_weights = (0.55, 0.3, 0.15)
true_means = [[4.0], [30.0], [120.0]]
X, y = make_negbin_mixture(
    3000, weights=true_weights, means=true_means, dispersion=0.15, random_state=0
)
print(X.shape, np.bincount(y))

# %%
# Fit a negative-binomial and a Poisson mixture
# ---------------------------------------------
# ``dispersion="shared"`` estimates one dispersion for all components by
# maximum likelihood; a number fixes it (0 is Poisson).
nb = NegBinMixture(n_components=3, dispersion="shared", n_init=3, random_state=0).fit(X)
pois = NegBinMixture(n_components=3, dispersion=0.0, n_init=3, random_state=0).fit(X)

order = np.argsort(nb.means_[:, 0])
print("weights   ", np.round(nb.weights_[order], 3))
print("means     ", np.round(nb.means_[order, 0], 1))
print("dispersion", np.round(nb.dispersion_[0, 0], 3))
print(f"BIC  negative binomial {nb.bic(X):.0f}   Poisson {pois.bic(X):.0f}")

# %%
# Fitted probability mass over the histogram
# ------------------------------------------
# Each component's pmf is drawn scaled by its weight; the black line is the
# mixture. Both axes are logarithmic (the count axis linear below 10), so the
# small high-count components show. In scipy's parametrization ``n = 1/phi`` and ``p = n / (n + mu)``.
grid = np.arange(0, int(X.max()) + 1)


def component_pmfs(model):
    pmfs = []
    for k in range(model.n_components):
        mu, phi = model.means_[k, 0], model.dispersion_[k, 0]
        if phi == 0:
            pmf = poisson.pmf(grid, mu)
        else:
            pmf = nbinom.pmf(grid, 1 / phi, 1 / (1 + phi * mu))
        pmfs.append(model.weights_[k] * pmf)
    return np.array(pmfs)


fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, model, title in [(axes[0], nb, "negative binomial"), (axes[1], pois, "Poisson")]:
    ax.hist(X[:, 0], bins=np.arange(0, grid[-1] + 2) - 0.5, density=True,
            color="0.8", label="counts")
    pmfs = component_pmfs(model)
    for k, pmf in enumerate(pmfs):
        ax.plot(grid, pmf, lw=1.2, label=f"component {k} (mean {model.means_[k, 0]:.0f})")
    ax.plot(grid, pmfs.sum(axis=0), color="k", lw=1.5, label="mixture")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 0.3)
    ax.set_xlabel("count")
    ax.set_title(f"{title} mixture, K=3 (BIC {model.bic(X):.0f})")
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The clusters against the truth
# ------------------------------
# ``predict`` assigns each cell to its most probable component; the adjusted
# Rand index compares that partition with the simulated cell types.
from sklearn.metrics import adjusted_rand_score

print(f"ARI negative binomial {adjusted_rand_score(y, nb.predict(X)):.3f}")
print(f"ARI Poisson           {adjusted_rand_score(y, pois.predict(X)):.3f}")
