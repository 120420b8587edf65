"""Stand-ins for ComfyUI dependencies the GPU check's server imports but never uses (tools/gpu_check.sh puts
this folder on PYTHONPATH for the server only). The GPU machine has torch but not ComfyUI's other
requirements, and its carry must stay small: scipy, av, torchvision, transformers and friends (~150 MB of
wheels) are only touched by model loaders and samplers the eviction test does not run. Any import of
these names yields an empty module whose attributes are placeholder classes; calling one raises."""
import importlib.abc
import importlib.machinery
import os
import sys
import types

STUBBED = set(os.environ.get("ATELIER_STUB_MODULES", "").split(",")) - {""}


class _Placeholder(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__name__}.{name}")

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"{cls.__name__} is a stand-in (tools/gpu_stubs): not available on this machine")


def _placeholder(name):
    return _Placeholder(name, (), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0"
        return module

    def exec_module(self, module):
        pass


if STUBBED:
    sys.meta_path.insert(0, _Finder())
