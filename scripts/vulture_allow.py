# Names that vulture (make deadcode) reports as unused but something outside our code reads.
# vulture parses this file (never runs it): each line marks a name as used, with the reason.
# ruff: noqa
prepare_data  # Typer command: called by the framework
_.construct  # MindSpore Cell.construct: called by the framework (model.py, train.py)
_.disable  # Rich Progress.disable: read by Rich (ui.ImageProgress)
_.log_severity_level  # ONNX Runtime SessionOptions: read by ONNX Runtime (backends/ort.py)
_.dim_param  # ONNX protobuf field: written into the model file (inference/export.py)
_.producer_name  # ONNX protobuf field: written into the model file
_.producer_version  # ONNX protobuf field: written into the model file
_.thread_type  # PyAV codec context: read by FFmpeg (inference/video.py)
_.cache_folder  # OpenVINO backend: which compiled-model cache it used (read by tests/test_openvino.py)
_.loaded_from_cache  # OpenVINO backend: whether the compiled blob came from the cache (tests)
_.returncodes  # launcher.LaunchResult: every process's exit code, for library callers and tests
_.interrupt  # launcher.Launcher.interrupt: stop a launch from another thread (library, tests)
_.clean  # degrade.Draw.clean: a draw that changes nothing (tests/test_degrade.py)
