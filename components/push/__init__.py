"""Pushing a blessed model: the Pusher's executor (versioned, never overwriting) and the
ServingLoadCheck that loads the candidate as TF Serving does before it is pushed."""
