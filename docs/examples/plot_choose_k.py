"""
Choosing the number of components: BIC and cross-validation
===========================================================

How many cell types are in a count matrix? Two standard answers, both
available because :class:`skem.NegBinMixture` follows scikit-learn's API:

* the Bayesian information criterion, ``bic(X) = -2 log L + p log n``
  (lower is better), computed on the training data;
* the held-out log-likelihood: ``score`` is the mean log-likelihood per row,
  so :class:`~sklearn.model_selection.GridSearchCV` with no ``scoring``
  argument picks the ``n_components`` whose fits best predict unseen cells.

The data are the bundled example counts: 600 cells x 8 genes simulated from
three cell types.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold

from skem import NegBinMixture
from skem.datasets import load_negbin_counts

counts, cell_type = load_negbin_counts()
print(counts.shape)
print(cell_type.value_counts().sort_index())

# %%
# BIC over K
# ----------
k_range = range(1, 7)
models = [
    NegBinMixture(n_components=k, dispersion="shared", n_init=2, random_state=0).fit(counts)
    for k in k_range
]
bic = np.array([m.bic(counts) for m in models])
aic = np.array([m.aic(counts) for m in models])
print("BIC chooses K =", k_range[int(np.argmin(bic))])

# %%
# Held-out log-likelihood with GridSearchCV
# -----------------------------------------
# Five folds; each candidate is fitted on four and scored on the fifth.
search = GridSearchCV(
    NegBinMixture(dispersion="shared", n_init=2, random_state=0),
    {"n_components": list(k_range)},
    cv=KFold(5, shuffle=True, random_state=0),
).fit(counts)
cv = pd.DataFrame(search.cv_results_)
print(cv[["param_n_components", "mean_test_score", "std_test_score"]].round(3).to_string(index=False))
print("best held-out score at K =", search.best_params_["n_components"])

# %%
# Past the true K the held-out score is flat: an extra component splits a
# cell type in two and predicts new cells about as well. The usual remedy is
# the one-standard-error rule: take the smallest K whose mean score is within
# one standard error (over the folds) of the best.
scores, errors = cv["mean_test_score"].to_numpy(), cv["std_test_score"].to_numpy() / np.sqrt(5)
best = int(np.argmax(scores))
one_se_k = k_range[int(np.flatnonzero(scores >= scores[best] - errors[best])[0])]
print("one-standard-error rule chooses K =", one_se_k)

# %%
# Both criteria side by side
# --------------------------
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
left.plot(k_range, bic, "o-", label="BIC")
left.plot(k_range, aic, "s--", label="AIC")
left.set_xlabel("number of components K")
left.set_ylabel("criterion (lower is better)")
left.legend()
right.errorbar(k_range, cv["mean_test_score"], yerr=cv["std_test_score"], fmt="o-", capsize=3)
right.set_xlabel("number of components K")
right.set_ylabel("held-out log-likelihood per cell")
for ax in (left, right):
    ax.axvline(3, color="0.7", ls=":", zorder=0)
fig.tight_layout()
plt.show()

# %%
# The chosen model
# ----------------
# The model with the chosen K, fitted on all cells; its components against the
# true cell types, and its mean counts per gene:
model = models[one_se_k - 1]
print(pd.crosstab(cell_type, model.predict(counts), rownames=["true"], colnames=["component"]))
print(pd.DataFrame(model.means_, columns=counts.columns).round(1))
