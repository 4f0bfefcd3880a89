"""The layout stays what DESIGN.md says: no import circles, layers checked by lint-imports."""

from __future__ import annotations

import grimp


def test_no_module_imports_itself_through_another() -> None:
    graph = grimp.build_graph("bot", "handlers", "models", exclude_type_checking_imports=True)
    circles = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.find_shortest_chain(importer=imported, imported=module)
    ]
    assert circles == []


def test_handlers_reach_the_engine_and_the_hub_only_through_what_they_export() -> None:
    graph = grimp.build_graph("bot", "handlers", "models")
    reached = {
        (module, imported)
        for module in graph.modules
        if module.startswith("handlers")
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.startswith(("bot.engine.", "bot.hub."))
    }
    assert reached == set()


def test_every_name_the_engine_and_the_hub_export_resolves() -> None:
    import bot.engine
    import bot.hub

    for package in (bot.engine, bot.hub):
        for name in package.__all__:
            # Classes and functions go by their own name; constants (IMAGES_SHOWN) just resolve.
            assert getattr(getattr(package, name), "__name__", name) == name


def test_every_module_name_is_unique_in_the_tree() -> None:
    graph = grimp.build_graph("bot", "handlers", "models")
    leaves: dict[str, list[str]] = {}
    for module in graph.modules:
        if not module.endswith("__init__") and "." in module:
            leaves.setdefault(module.rsplit(".", 1)[1], []).append(module)
    packages = {module for module in graph.modules if graph.find_children(module)}
    repeated = {
        name: sorted(modules)
        for name, modules in leaves.items()
        if len([m for m in modules if m not in packages]) > 1
    }
    assert repeated == {}
