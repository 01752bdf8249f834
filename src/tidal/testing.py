"""Public conformance checks for tidal's plugin kinds, in the spirit of scikit-learn's ``check_estimator``.

Use them in the tests of your own plugins::

    from tidal.testing import check_drift_test, check_flavor, check_source

    def test_my_source(tmp_path):
        check_source(MySource(), "data/sample.fwf", tmp_path)
"""

from tidal.data.sources.checks import check_source
from tidal.monitor.checks import check_drift_test
from tidal.train.flavors.checks import check_flavor

__all__ = ["check_drift_test", "check_flavor", "check_source"]
