"""The Evaluator's configuration (TFMA: the absolute gate, the figures reported) and
the RegressionGate, whose paired test on the same images gives the blessing the Pusher
obeys."""
