# A negative-binomial driver for R flexmix (which has none), for benchmarks/bench_negbin.py.
#
# Usage: Rscript flexmix_nb.R counts.csv K dispersion tolerance iter.max seed [start.csv]
#   counts.csv : numeric columns, one row per observation (no row names)
#   dispersion : "full" (one size per component and feature, estimated) or a number phi >= 0
#                (fixed; size = 1/phi, 0 = Poisson)
#   tolerance  : flexmix's own rule, a relative change of the log-likelihood
#   start.csv  : optional starting cluster of each row (1..K), else flexmix's random start
# Prints one line: loglik=<total> iter=<EM iterations> seconds=<fit time>.
#
# The driver follows flexmix's FLXMRglm pattern (a FLXMR object with defineComponent and a
# weighted fit function). Its M-step is exact for each component: the weighted mean of each
# column is the MLE of the mean whatever the size, and the size of each column solves the
# one-dimensional weighted likelihood by optimize() on log(size) to 1e-10. Columns are
# independent given the component (the model of NegBinMixture).

suppressPackageStartupMessages(library(flexmix))

FLXMRnegbin <- function(formula = . ~ ., dispersion = "full") {
  z <- new("FLXMR", weighted = TRUE, formula = formula, name = "negative binomial")
  z@defineComponent <- function(para) {
    logLik <- function(x, y) {
      mu <- matrix(para$mu, nrow(y), ncol(y), byrow = TRUE)
      size <- matrix(para$size, nrow(y), ncol(y), byrow = TRUE)
      rowSums(ifelse(is.finite(size), dnbinom(y, size = size, mu = mu, log = TRUE),
                     dpois(y, mu, log = TRUE)))
    }
    predict <- function(x) matrix(para$mu, nrow(x), length(para$mu), byrow = TRUE)
    new("FLXcomponent", parameters = list(mu = para$mu, size = para$size),
        df = para$df, logLik = logLik, predict = predict)
  }
  z@fit <- function(x, y, w, ...) {
    mu <- pmax(colSums(w * y) / sum(w), 1e-8)
    if (identical(dispersion, "full")) {
      size <- sapply(seq_len(ncol(y)), function(j) {
        negloglik <- function(log_size) -sum(w * dnbinom(y[, j], size = exp(log_size), mu = mu[j], log = TRUE))
        exp(optimize(negloglik, c(-log(1e6), -log(1e-8)), tol = 1e-10)$minimum)
      })
      df <- 2 * ncol(y)
    } else {
      phi <- as.numeric(dispersion)
      size <- rep(if (phi > 0) 1 / phi else Inf, ncol(y))
      df <- ncol(y)
    }
    z@defineComponent(list(mu = mu, size = size, df = df))
  }
  z
}

args <- commandArgs(trailingOnly = TRUE)
y <- as.matrix(read.csv(args[1]))
K <- as.integer(args[2])
dispersion <- args[3]
tolerance <- as.numeric(args[4])
iter_max <- as.integer(args[5])
set.seed(as.integer(args[6]))
control <- list(tolerance = tolerance, iter.max = iter_max, minprior = 0)
model <- FLXMRnegbin(dispersion = dispersion)
seconds <- system.time(
  fit <- if (length(args) >= 7) {
    flexmix(y ~ 1, cluster = as.integer(read.csv(args[7])[[1]]), model = model, control = control)
  } else {
    flexmix(y ~ 1, k = K, model = model, control = control)
  }
)[["elapsed"]]
cat(sprintf("loglik=%.10f iter=%d seconds=%.3f\n", as.numeric(logLik(fit)), fit@iter, seconds))
