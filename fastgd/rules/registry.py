"""The one registry of rules, and plugins: files or modules that register rules of their own.

Tests, benchmarks, sweeps and reports iterate over :data:`RULES` (built-ins
first, in FORMULAS.md's order, then users' rules in the order registered);
:data:`fastgd.optim.OPTIMIZERS` is the same registry as optimizer classes.
"""

import hashlib
import importlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from types import MappingProxyType

from fastgd.rules.checks import check_rule
from fastgd.rules.definition import Rule, RuleError

__all__ = ["RULES", "register", "unregister", "get", "is_builtin", "PluginError", "Plugin", "load_plugin",
           "load_plugins", "plugin_of", "rebuild"]

_RULES = {}
_BUILTIN = set()
_LOCK = threading.RLock()

RULES = MappingProxyType(_RULES)
"""Rule name → :class:`Rule`, read-only; :func:`register` adds to it."""


class PluginError(ValueError):
    """A plugin that cannot be loaded: missing, raising, or registering a bad rule. One line."""


def _add(rule, builtin):
    with _LOCK:
        _RULES[rule.name] = rule
        if builtin:
            _BUILTIN.add(rule.name)
    from fastgd import reference

    if rule.reference is not None:
        reference.register(rule.name, rule.reference, rule.defaults)
    elif not builtin:
        reference.unregister(rule.name)  # a replaced definition's reference is not this one's


def register(rule_or_name, *, replace=False, **declaration):
    """Add a rule to the registry; then ``optim.OPTIMIZERS[name]``, estimators, sweeps and reports know it.

    Two forms::

        rules.register(rules.Rule("signum", element=signum_element, hyperparameters=..., ...))

        @rules.register("signum", hyperparameters=..., state=..., per_step=...)
        def signum_element(param, grad, momentum_buffer, lr, beta, one_minus_beta):
            ...

    A built-in rule's name is refused. Registering a name again with the same
    definition does nothing (a plugin loaded twice); with another definition it
    is refused unless ``replace=True``. The element and evaluation functions
    are checked first (:func:`fastgd.rules.checks.check_rule`: no float
    literals, no calls but ``math``, ``abs`` and helpers, the parameters' dtype
    kept, one value returned per state slot), and the rule's identity is taken
    (a global that cannot be hashed is refused). Returns the :class:`Rule` (the
    element function, for the decorator form).
    """
    if isinstance(rule_or_name, Rule):
        if declaration:
            raise TypeError("register(rule) takes no declaration keywords: they belong in Rule(...)")
        return _register(rule_or_name, replace)
    if not isinstance(rule_or_name, str):
        raise TypeError(f"register takes a Rule or a rule name, got {type(rule_or_name).__name__}")

    def decorate(element):
        _register(Rule(rule_or_name, element=element, **declaration), replace)
        return element

    return decorate


_LOADING = threading.local()  # the path of the plugin file being executed, if any


def _register(rule, replace):
    rule.hash  # noqa: B018 -- now, from the sources its functions were compiled from, not at first use after an edit
    with _LOCK:
        if rule.name in _BUILTIN:
            raise RuleError(f"rule {rule.name!r}: the name is a built-in rule's; choose another name")
        from fastgd.rules import kernels

        # fastgd.rules.kernels.<rule> would be that module's own function, not the rule's kernel
        if rule.name in vars(kernels):
            raise RuleError(f"rule {rule.name!r}: the name is taken by fastgd.rules.kernels.{rule.name}; choose "
                            "another name")
        existing = _RULES.get(rule.name)
        origin = _ORIGIN.get(rule.name)
        # a plugin file loaded again after an edit replaces its own rules
        replace = replace or (origin is not None and origin.path is not None
                              and origin.path == getattr(_LOADING, "path", None))
        if existing is not None and existing.hash != rule.hash and not replace:
            raise RuleError(f"rule {rule.name!r} is already registered with another definition; pass replace=True "
                            "to replace it")
        if existing is not None and existing.hash == rule.hash:
            return existing
        check_rule(rule)
        _add(rule, builtin=False)
    return rule


def unregister(name):
    """Remove a user's rule (built-ins stay); the plugin that registered it may then be loaded again."""
    with _LOCK:
        if name in _BUILTIN:
            raise RuleError(f"rule {name!r} is built in and cannot be removed")
        if name not in _RULES:
            raise KeyError(name)
        del _RULES[name]
        from fastgd import reference

        reference.unregister(name)
        plugin = _ORIGIN.pop(name, None)
        if plugin is not None:
            _LOADED.pop(plugin.digest or plugin.spec, None)


def get(name):
    """The :class:`Rule` called ``name``; a ValueError naming the known rules otherwise."""
    try:
        return _RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}: use one of {sorted(_RULES)} (or register your own with "
                         "fastgd.rules.register)") from None


def is_builtin(name):
    """Whether ``name`` is one of fastgd's own rules (declared in :mod:`fastgd.rules.builtin`), not a user's."""
    return name in _BUILTIN


# --- plugins ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plugin:
    """A plugin as it travels to worker processes and Dask workers.

    ``spec`` is what the user wrote (a path or a module name); ``path`` the
    resolved file (None for a module); ``source`` the file's text, so a worker
    without the file loads the same code; ``digest`` its sha256.
    """

    spec: str
    path: str = None
    source: str = None
    digest: str = None


_LOADED = {}  # digest (files) or module name -> names of the rules it registered
_ORIGIN = {}  # rule name -> the Plugin that registered it


def _is_path(spec):
    return spec.endswith(".py") or os.sep in spec or (os.altsep is not None and os.altsep in spec)


def resolve_plugin(spec, base_dir=None):
    """The :class:`Plugin` for ``spec`` (a .py path, relative to ``base_dir``, or a module name), checked to exist."""
    if isinstance(spec, Plugin):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"a plugin is a path to a .py file or a module name, got {spec!r}")
    if not _is_path(spec):
        found = importlib.util.find_spec(spec.split(".")[0])
        if found is None:
            raise PluginError(f"plugin module {spec!r} not found (give a path ending in .py for a file)")
        if "." not in spec and found.origin in (None, "namespace"):
            # a directory without __init__.py on the path imports as an empty namespace package: no rule, no error
            raise PluginError(f"plugin {spec!r} is a directory without __init__.py, not a module (give a path "
                              "ending in .py for a file)")
        return Plugin(spec)
    path = os.path.abspath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(spec)))
    if os.path.isdir(path):
        raise PluginError(f"plugin {path} is a directory, not a .py file")
    if not os.path.isfile(path):
        raise PluginError(f"plugin file not found: {path}")
    if not path.endswith(".py"):
        # Python's file loaders take a module's kind from its suffix: another would not load at all
        raise PluginError(f"plugin file {path} is not a .py file")
    try:
        with open(path, encoding="utf-8") as file:
            source = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise PluginError(f"plugin file {path} cannot be read: {error}") from None
    return Plugin(spec, path, source, hashlib.sha256(source.encode()).hexdigest())


def load_plugin(spec, base_dir=None):
    """Load a plugin (see :func:`resolve_plugin`); returns the names of the rules it registered.

    A file is loaded once per process for its content: loading it again does
    nothing unless the file changed. A worker given a :class:`Plugin` whose
    file it lacks (or holds in another version) loads the shipped source.
    """
    plugin = resolve_plugin(spec, base_dir)
    key = plugin.digest or plugin.spec
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        before, origins = dict(_RULES), dict(_ORIGIN)
        where = plugin.path or plugin.spec
        try:
            if plugin.path is None:
                importlib.import_module(plugin.spec)
            else:
                _exec_file(plugin)
        except BaseException as error:
            # a plugin that fails leaves the registry as it found it: no half of its rules stays registered
            _restore(before, origins)
            if isinstance(error, RuleError):
                raise PluginError(f"plugin {where}: {error}") from None
            if isinstance(error, PluginError):
                raise
            if isinstance(error, SystemExit):
                # sys.exit(0) in a plugin made `fastgd sweep` exit 0 having done nothing
                raise PluginError(f"plugin {where} called sys.exit({error.code!r}): a plugin registers rules and "
                                  "returns") from None
            if isinstance(error, Exception):
                raise PluginError(f"plugin {where} raised {type(error).__name__}: "
                                  f"{' '.join(str(error).split())}") from None
            raise
        added = [name for name, rule in _RULES.items() if before.get(name) is not rule]
        _LOADED[key] = added
        for name in added:
            _ORIGIN[name] = plugin
        return added


def _restore(rules, origins):
    """Put the registry back to ``rules`` (name → Rule) and ``origins`` (name → Plugin), references included."""
    from fastgd import reference

    for name in [name for name in {**_RULES, **rules} if _RULES.get(name) is not rules.get(name)]:
        if _RULES.pop(name, None) is not None:
            reference.unregister(name)
        if name in rules:
            _add(rules[name], builtin=False)
    _ORIGIN.clear()
    _ORIGIN.update(origins)


def _exec_file(plugin):
    path = plugin.path
    current = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as file:
            current = file.read()
    if current != plugin.source:
        # this machine lacks the file, or holds another version: load the shipped one
        from fastgd.rules.compile import generated_directory, write_source

        path = os.path.join(generated_directory(), "plugins", plugin.digest[:16], os.path.basename(plugin.path))
        write_source(path, plugin.source)
    stem = os.path.splitext(os.path.basename(path))[0]
    module_name = f"fastgd_plugin_{stem}_{plugin.digest[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    _LOADING.path = plugin.path
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    finally:
        _LOADING.path = None


def load_plugins(specs, base_dir=None):
    """Load several plugins; returns the names of every rule they registered."""
    names = []
    for spec in specs or ():
        names += [name for name in load_plugin(spec, base_dir) if name not in names]
    return names


def plugin_of(name):
    """The :class:`Plugin` that registered rule ``name`` in this process, or None (a built-in, or registered
    directly)."""
    rule = _RULES.get(name)
    plugin = _ORIGIN.get(name)
    if rule is None or plugin is None or _LOADED.get(plugin.digest or plugin.spec) is None:
        return None
    return plugin


# --- rules in pickles ------------------------------------------------------------------------

def rebuild(name, definition, plugin=None):
    """The rule ``name`` with identity ``definition`` (its hash), for an object unpickled in this process.

    ``plugin`` (the :class:`Plugin` that registered it where the object was
    pickled, as :func:`plugin_of` gave it) is loaded where this process lacks
    the rule: from its file where the file is here, else from the source the
    pickle carries. A rule whose definition differs here (an edited plugin,
    another fastgd), or that was registered by code rather than by a plugin,
    is a one-line :class:`PluginError` saying how to make it available.
    """
    rule = _RULES.get(name)
    if rule is not None and rule.hash == definition:
        return rule
    if rule is None and plugin is not None:
        where = plugin.path or plugin.spec
        with _LOCK:
            before, origins, loaded = dict(_RULES), dict(_ORIGIN), dict(_LOADED)
            load_plugin(plugin.path if plugin.path is not None and os.path.isfile(plugin.path) else plugin)
            rule = _RULES.get(name)
            if rule is not None and rule.hash == definition:
                return rule
            # refused: the registry stays as it was, as for a plugin that fails to load
            _restore(before, origins)
            _LOADED.clear()
            _LOADED.update(loaded)
        if rule is None:
            raise PluginError(f"plugin {where} no longer registers rule {name!r}, which the pickle was made with")
        raise PluginError(f"plugin {where} has changed since the pickle was made: its rule {name!r} is "
                          f"{rule.hash[:12]} here, the pickle's {definition[:12]}; load the plugin as it was")
    if rule is None:
        raise PluginError(f"rule {name!r} is not registered in this process: where the pickle was made it was "
                          "registered by code, not by a plugin; put it in a plugin file and load it first "
                          "(fastgd.rules.load_plugin, or FASTGD_PLUGINS, which worker processes load at import)")
    origin = f" (plugin {plugin.path or plugin.spec})" if plugin is not None else ""
    raise PluginError(f"rule {name!r} is {rule.hash[:12]} in this process, the pickle's {definition[:12]}{origin}: "
                      "load the definition it was made with")
