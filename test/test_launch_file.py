"""launch/perception.launch.py without launch installed: valid Python that declares the
documented arguments, and its plain functions (the real launch runs in test_launch.py where
launch_pytest exists)."""
import ast
from pathlib import Path

LAUNCH_FILE = Path(__file__).resolve().parent.parent / 'launch' / 'perception.launch.py'
ARGUMENTS = {'namespace', 'params_file', 'image', 'camera_info', 'odom', 'use_sim_time', 'autostart', 'log_level',
             'record'}


def test_launch_file_declares_the_documented_arguments():
    text = LAUNCH_FILE.read_text()
    tree = ast.parse(text)
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument'}
    assert declared == ARGUMENTS
    assert 'generate_launch_description' in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'eval(' not in text and 'PythonExpression' not in text
    # ros2 bag record takes topics with --topics (positional topics are deprecated upstream)
    assert "'record', '--storage', 'mcap', '--output', output,\n                                '--topics'" in text


def _launch_function(name):
    """One plain function of the launch file, run without launch installed."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    scope = {'NODE_NAME': 'hydranet'}
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(LAUNCH_FILE), 'exec'), scope)
    return scope[name]


def test_log_level_names_the_nodes_own_logger_and_a_missing_params_file_fails():
    node_logger = _launch_function('node_logger')
    assert node_logger('/hydranet') == 'hydranet.hydranet'
    assert node_logger('/robot1/perception/') == 'robot1.perception.hydranet'
    assert node_logger('') == 'hydranet'
    text = LAUNCH_FILE.read_text()
    assert "f'{node_logger(namespace)}:={arg(\"log_level\")}'" in text
    assert "raise RuntimeError(f'params_file:={params_file}: no such file')" in text
