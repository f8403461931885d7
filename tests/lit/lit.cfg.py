# lit.cfg.py — configuration of gradc's lit tests (tests/lit/**).
#
# Each test is an input file (.gir IR text, .json model, .test script) that
# holds its own `RUN:` lines and FileCheck `CHECK:` lines.  ctest runs
#   lit.py -sv tests/lit --param gradc=BUILD/gradc \
#          --param llvm_bindir=/usr/lib/llvm-19/bin --param source_root=SRC
# Directories named Inputs hold data that tests read, not tests.
import os

import lit.formats

config.name = 'gradc'
config.suffixes = ['.gir', '.json', '.test']
config.test_format = lit.formats.ShTest(True)
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.excludes = ['Inputs']

_here = config.test_source_root
_source_root = lit_config.params.get('source_root', os.path.dirname(os.path.dirname(_here)))
_bindir = lit_config.params.get('llvm_bindir', '/usr/lib/llvm-19/bin')
_gradc = lit_config.params.get('gradc', os.path.join(_source_root, 'build', 'gradc'))

# Scratch files (%t) go next to the gradc binary, not into the source tree.
config.test_exec_root = lit_config.params.get(
    'exec_root', os.path.join(os.path.dirname(os.path.abspath(_gradc)), 'lit-output'))


def _tool(name):
    # The bare word only: not inside a path, a file name or a longer word.
    return r'(?<![\w/.%-])' + name + r'(?![\w/.-])'


config.substitutions.append(('%models', os.path.join(_source_root, 'models')))
config.substitutions.append((_tool('gradc'), _gradc))
config.substitutions.append((_tool('FileCheck'), os.path.join(_bindir, 'FileCheck')))
config.substitutions.append((_tool('not'), os.path.join(_bindir, 'not')))

# Keep the environment small and predictable for the tools under test.
config.environment['LC_ALL'] = 'C'
