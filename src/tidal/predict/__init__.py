"""From a registered model to checked answers, with no web framework: the predict path shared by the
server (``tidal.serve``) and the SDK (``Workspace.predict`` and ``Workspace.feedback``).

:mod:`~tidal.predict.state` loads a version and checks it answers; :mod:`~tidal.predict.inputs` checks
the rows and labels a caller sends against the model's signature; :mod:`~tidal.predict.predictor` runs
the model (a fast path where it pays, checked bit for bit against the generic one at load);
:mod:`~tidal.predict.records` turns answers into the prediction log's batches. Every refusal is an
:class:`~tidal.predict.errors.ApiError` whose message names the field and the problem.
"""
