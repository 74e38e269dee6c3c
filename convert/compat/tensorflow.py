"""TensorFlow's internals as tfport uses them (tensorflow 2.21.0): the freezer one level down.

`convert_variables_to_constants_v2` re-imports the graph it froze; a Keras 3 export's seed-state
updates make that re-import fail, so such a function is frozen with the two steps it calls inside.
"""

from __future__ import annotations

from convert.compat.pinned import Private

VERSION = "2.21.0"
_C2C = "tensorflow.python.framework.convert_to_constants"
CONVERTER_DATA = Private("tensorflow", VERSION, _C2C, "_FunctionConverterDataInEager")
REPLACE_VARIABLES = Private("tensorflow", VERSION, _C2C, "_replace_variables_by_constants")


def freeze_without_reimport(fn):
    """The GraphDef of a concrete function with its variables as constants, not re-imported."""
    data = CONVERTER_DATA.get()(func=fn, lower_control_flow=True, aggressive_inlining=False)
    graph_def, _ = REPLACE_VARIABLES.get()(converter_data=data)
    return graph_def
