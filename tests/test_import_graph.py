"""The shape of the code as the import graph shows it (grimp, which import-linter uses, counting the imports
inside function bodies too): the only import circle allowed is a service and its own slice's `tasks.py` (the
service queues the task, the task calls the service when it runs)."""

import grimp


def _circles(graph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = lowest[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowest[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    lowest[module] = min(lowest[module], index[child])
                continue
            work.pop()
            if work:
                lowest[work[-1][0]] = min(lowest[work[-1][0]], lowest[module])
            if lowest[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_only_import_circles_are_a_service_and_its_own_tasks():
    graph = grimp.build_graph("apps")
    circles = _circles(graph)

    for circle in circles:
        packages = {module.rpartition(".")[0] for module in circle}
        assert len(circle) == 2, f"an import circle across modules: {sorted(circle)}"
        assert len(packages) == 1, f"an import circle across packages: {sorted(circle)}"
        assert {module.rpartition(".")[2] for module in circle} == {"services", "tasks"}, sorted(circle)


def test_a_circle_is_found_where_there_is_one():
    """The search itself: the mail outbox queues its task and the task calls the outbox."""
    assert {"apps.mail.services", "apps.mail.tasks"} in _circles(grimp.build_graph("apps"))
