"""Audit campaigns (issue 14): the population of backup versions under a prefix, a
sample drawn from it (random with a recorded seed, or a rotating slice), every sampled
version verified (some restore-tested) with bounded parallelism, each result and the
campaign itself recorded in the chained history; and coverage over time."""
