"""Bundle.GetChangesMapArgs on the controller side: change lists checked against the ones Juju's
own tests expect (tests/lab/bundlechanges/juju_cases.yaml names each source test), Juju's
verification and API errors, overlay merging, local charms, and python-libjuju parsing the
output the way its BundleHandler does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from botlab.lab.juju import bundlechanges
from botlab.lab.juju.bundle_parse import parse_charm_url
from botlab.lab.juju.bundle_read import read_bundle
from botlab.lab.juju.bundlechanges import BundleChangesError, get_changes_map_args

CASES_FILE = Path(__file__).parent / "bundlechanges" / "juju_cases.yaml"
JUJU_CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text())


def expected_changes(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """[id, args, requires?] rows as BundleChangesMapArgs dicts."""
    return [
        {"id": row[0], "method": row[0].rsplit("-", 1)[0], "args": row[1], "requires": row[2] if len(row) > 2 else []}
        for row in rows
    ]


@pytest.mark.parametrize("case", JUJU_CASES, ids=[c["name"] for c in JUJU_CASES])
def test_changes_match_juju(case: dict[str, Any]) -> None:
    changes, errors = get_changes_map_args(case["bundle"], case.get("bundle_url", ""))
    assert changes == expected_changes(case["changes"]), case["source"]
    assert errors == [""] * len(changes)


ORDERINGS: list[dict[str, Any]] = yaml.safe_load((CASES_FILE.parent / "juju_orderings.yaml").read_text())


def summarize(changes: list[dict[str, Any]]) -> list[str]:
    """Each change as "<method> <subject>", the form juju_orderings.yaml transcribes."""
    deployed = {c["id"]: c["args"]["application"] for c in changes if c["method"] == "deploy"}
    steps = []
    for change in changes:
        method, args = change["method"], change["args"]
        subject = {
            "addCharm": lambda a: parse_charm_url(a["charm"]).name,
            "deploy": lambda a: a["application"],
            "expose": lambda a: deployed[a["application"][1:]],
            "setAnnotations": lambda a: "machine" if a["entity-type"] == "machine" else deployed[a["id"][1:]],
            "addMachines": lambda a: a.get("container-type", ""),
            "addUnit": lambda a: deployed[a["application"][1:]],
        }.get(method, lambda a: "")(args)
        steps.append(f"{method} {subject}".strip())
    return steps


@pytest.mark.parametrize("case", ORDERINGS, ids=[c["source"] for c in ORDERINGS])
def test_change_order_matches_juju(case: dict[str, Any]) -> None:
    changes, _ = get_changes_map_args(case["bundle"])
    assert summarize(changes) == case["order"]


def test_cases_cover_the_required_kinds() -> None:
    methods = {row[0].rsplit("-", 1)[0] for case in JUJU_CASES for row in case["changes"]}
    assert len(JUJU_CASES) >= 8
    assert {"addCharm", "deploy", "addMachines", "addUnit", "addRelation", "expose", "setAnnotations"} <= methods
    assert {"createOffer", "consumeOffer", "grantOfferAccess"} <= methods


# Series per application, written the 3.1 way (juju/juju core/bundle/changes/changes_test.go
# TestSimpleBundle at 3ccfcc74: `series: focal`, bundle `series: jammy`). Juju 3.6 turns series
# into bases, so the expected changes are TestSimpleBundle's (CT) with base ubuntu@20.04/stable.
SERIES_BUNDLE = """
applications:
    mediawiki:
        charm: ch:mediawiki
        series: focal
        num_units: 1
        expose: true
        options:
            debug: false
        annotations:
            gui-x: "609"
            gui-y: "-15"
        resources:
            data: 3
    mysql:
        charm: ch:mysql
        series: focal
        num_units: 1
        resources:
          data: "./resources/data.tar"
series: jammy
relations:
    - - mediawiki:db
      - mysql:db
"""


def test_series_per_application_becomes_a_base() -> None:
    by_name = {case["name"]: case for case in JUJU_CASES}
    expected = expected_changes(by_name["relations-expose-annotations-options-resources"]["changes"])
    changes, _ = get_changes_map_args(SERIES_BUNDLE)
    assert changes == expected


def test_bundle_series_is_the_default_base_for_new_machines() -> None:
    changes, _ = get_changes_map_args("series: jammy\napplications:\n  u:\n    charm: ubuntu\n    num_units: 1\n")
    assert changes[0]["args"] == {"charm": "ubuntu", "base": "ubuntu@22.04/stable"}
    assert changes[-1]["args"] == {"application": "$deploy-1"}


# juju/juju apiserver/facades/client/bundle/bundle_test.go (FT in juju_cases.yaml):
# TestGetChangesMapArgsBundleVerificationErrors, ...ConstraintsError, ...StorageError, ...DevicesError.
VERIFICATION_CASES = [
    (
        """
        applications:
            django:
                charm: django
                to: [1]
            haproxy:
                charm: 42
                num_units: -1
        """,
        [
            'placement "1" refers to a machine not defined in this bundle',
            'too many units specified in unit placement for application "django"',
            'invalid charm URL in application "haproxy": cannot parse name and/or revision in URL "42": '
            'name "42" not valid',
            'negative number of units specified on application "haproxy"',
        ],
    ),
    (
        "applications:\n  django:\n    charm: django\n    num_units: 1\n    constraints: bad=wolf\n",
        ['invalid constraints "bad=wolf" in application "django": unknown constraint "bad"'],
    ),
    (
        "applications:\n  django:\n    charm: django\n    num_units: 1\n    storage:\n      bad: 0,100M\n",
        ['invalid storage "bad" in application "django": cannot parse count: count must be greater than zero, got "0"'],
    ),
    (
        "applications:\n  django:\n    charm: django\n    num_units: 1\n"
        "    devices:\n      bad-gpu: -1,nvidia.com/gpu\n",
        ['invalid device "bad-gpu" in application "django": count must be greater than zero, got "-1"'],
    ),
]


@pytest.mark.parametrize(("bundle", "expected"), VERIFICATION_CASES)
def test_verification_errors_match_juju(bundle: str, expected: list[str]) -> None:
    changes, errors = get_changes_map_args(bundle)
    assert changes == []
    assert sorted(errors) == sorted(expected)


@pytest.mark.parametrize(
    ("bundle", "expected"),
    [
        (
            "applications:\n  a:\n    charm: a\nrelations:\n- [a:db, b:db]\n",
            ['relation ["a:db" "b:db"] refers to application "b" not defined in this bundle'],
        ),
        (
            "applications:\n  a:\n    charm: a\n    num_units: 1\n    to: ['lxd:b/0']\n",
            ['placement "lxd:b/0" refers to an application not defined in this bundle'],
        ),
        (
            "applications:\n  a:\n    charm: a\n    num_units: 1\n    to: ['b c']\n",
            ['invalid placement syntax "b c"'],
        ),
        (
            "applications:\n  a:\n    charm: a\nmachines:\n  '3':\n",
            ['machine "3" is not referred to by a placement directive'],
        ),
        (
            "applications:\n  a:\n    charm: ch:a-3\n",
            ['cannot specify revision in "ch:a-3", please use revision'],
        ),
        (
            "applications:\n  a:\n    charm: a\n    revision: 3\n",
            ['application "a" with a revision requires a channel for future upgrades, please use channel'],
        ),
        ("machines: {}\n", ["at least one application must be specified"]),
    ],
)
def test_other_verification_errors(bundle: str, expected: list[str]) -> None:
    assert get_changes_map_args(bundle) == ([], expected)


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        # FT TestGetChangesMapArgsBundleContentError.
        (":", "cannot read bundle YAML: malformed bundle: bundle is empty not valid"),
        # CT TestPlacementCycle and TestPlacementCycleSameApp.
        (
            """
            applications:
                mysql:
                    charm: ch:mysql
                    num_units: 3
                    to: [new, "lxd:0", "lxd:keystone/2"]
                keystone:
                    charm: ch:keystone
                    num_units: 3
                    to: ["lxd:mysql"]
            machines:
                0:
            """,
            "cycle in placement directives for: keystone, mysql",
        ),
        (
            """
            applications:
                problem:
                    charm: ch:problem
                    num_units: 2
                    to: ["lxd:new", "lxd:problem/0"]
            """,
            "cycle in placement directives for: problem",
        ),
        ("applications:\n  a:\n    charm: a\n    series: nosuch\n", 'unknown OS for series: "nosuch"'),
        (
            "applications:\n  a:\n    charm: a\n    offers:\n      o:\n        endpoints: [db]\n",
            "cannot read bundle YAML: applications.a.offers can only appear in an overlay section (and 1 more errors)",
        ),
    ],
)
def test_api_errors(bundle: str, message: str) -> None:
    with pytest.raises(BundleChangesError) as failure:
        get_changes_map_args(bundle)
    assert str(failure.value) == message


def test_base_document_overlay_fields_are_listed_like_juju() -> None:
    # juju/charm overlay_test.go TestVerifyNoOverlayFieldsPresent: the four errors, first one shown.
    bundle = """
applications:
  apache2:
    charm: apache2
    offers:
      my-offer:
        endpoints: [apache-website, website-cache]
        acl: {admin: admin, foo: consume}
      my-other-offer:
        endpoints: [apache-website]
"""
    with pytest.raises(BundleChangesError, match=r"applications\.apache2\.offers can .* \(and 3 more errors\)$"):
        get_changes_map_args(bundle)


def merged(text: str) -> Any:
    """The merged bundle of a multi-document text."""
    return read_bundle(text, "")


@pytest.mark.parametrize(
    ("overlaid", "expected"),
    [
        # juju/charm overlay_test.go TestAddAndOverrideOptionsAndAnnotations.
        (
            "applications:\n  apache2:\n    charm: apache2\n    options:\n      opt1: foo\n      opt1: bar\n"
            "      mapOpt:\n        foo: bar\n---\napplications:\n  apache2:\n    options:\n      opt1: foo\n"
            '      opt2: ""\n      mapOpt:\n    annotations:\n      ann1: new\n',
            "applications:\n  apache2:\n    charm: apache2\n    options:\n      opt1: foo\n      opt2: ''\n"
            "    annotations:\n      ann1: new\n",
        ),
        # juju/charm overlay_test.go TestAddModifyAndRemoveApplicationsAndRelations.
        (
            "applications:\n  apache2:\n    charm: apache2\n  wordpress:\n    charm: wordpress\n  dummy:\n"
            "    charm: dummy\nrelations:\n- - wordpress:www\n  - apache2:www\n---\napplications:\n  apache2:\n"
            "    charm: apache2\n  wordpress: \nrelations:\n- - dummy:www\n  - apache2:www\n",
            "applications:\n  apache2:\n    charm: apache2\n  dummy:\n    charm: dummy\nrelations:\n"
            "- - dummy:www\n  - apache2:www\n",
        ),
        # juju/charm overlay_test.go TestAddModifyAndRemoveSaasBlocksAndRelations.
        (
            "saas:\n  postgres:\n    url: jaas:admin/default.postgres\napplications:\n  wordpress:\n"
            "    charm: wordpress\nrelations:\n- - wordpress:db\n  - postgres:db\n---\nsaas:\n  postgres: \n"
            "  cockroachdb:\n    url: jaas:admin/default.cockroachdb\n",
            "applications:\n  wordpress:\n    charm: wordpress\nsaas:\n  cockroachdb:\n"
            "    url: jaas:admin/default.cockroachdb\n",
        ),
    ],
)
def test_overlays_merge_like_juju(overlaid: str, expected: str) -> None:
    assert merged(overlaid) == merged(expected)


CHARM_METADATA = """name: multi-series
summary: That's a dummy charm with multi-series.
description: A dummy charm.
series:
    - jammy
    - focal
    - bionic
"""


# CT TestLocalCharmWithExplicitBase, TestLocalCharmWithSeriesFromCharm, TestLocalCharmWithBaseFromBundle.
@pytest.mark.parametrize(
    ("extra", "base"),
    [
        ("        base: ubuntu@16.04\n", "ubuntu@16.04/stable"),
        ("", "ubuntu@22.04/stable"),
        ("default-base: ubuntu@20.04\n", "ubuntu@20.04/stable"),
    ],
)
def test_local_charm_base(tmp_path: Path, extra: str, base: str) -> None:
    charm_dir = tmp_path / "multiseries"
    charm_dir.mkdir()
    (charm_dir / "metadata.yaml").write_text(CHARM_METADATA)
    app_extra, top_extra = (extra, "") if extra.startswith(" ") else ("", extra)
    bundle = f"{top_extra}applications:\n    django:\n        charm: {charm_dir}\n{app_extra}"
    changes, _ = get_changes_map_args(bundle)
    assert changes == expected_changes(
        [
            ["addCharm-0", {"charm": str(charm_dir), "base": base}],
            ["deploy-1", {"application": "django", "charm": "$addCharm-0", "base": base}, ["addCharm-0"]],
        ]
    )


def test_missing_local_charm_is_a_verification_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    changes, errors = get_changes_map_args(f"applications:\n  a:\n    charm: {missing}\n")
    assert (changes, errors) == ([], [f'charm path in application "a" does not exist: {missing}'])


def test_relative_charm_path_resolves_against_the_bundle_url(tmp_path: Path) -> None:
    (tmp_path / "charm").mkdir()
    (tmp_path / "charm" / "metadata.yaml").write_text("name: c\nseries: [noble]\n")
    changes, _ = get_changes_map_args("applications:\n  a:\n    charm: ./charm\n", str(tmp_path))
    assert changes[0]["args"] == {"charm": str(tmp_path / "charm"), "base": "ubuntu@24.04/stable"}


def test_include_file_options(tmp_path: Path) -> None:
    (tmp_path / "motd.txt").write_text("hello")
    bundle = "applications:\n  a:\n    charm: a\n    options:\n      motd: include-file://motd.txt\n"
    changes, _ = get_changes_map_args(bundle, str(tmp_path))
    assert changes[1]["args"]["options"] == {"motd": "hello"}


def test_yaml_scalars_follow_go_yaml_v2() -> None:
    bundle = """
applications:
  a:
    charm: a
    channel: 3.10/stable
    expose: on
    options: {octal: 017, hex: 0x1F, whole: 2.0, text: "017", stamp: 2024-01-02, flag: yes, none: ~}
    annotations: {n: 10, f: 1.50, b: yes}
"""
    changes, _ = get_changes_map_args(bundle)
    deploy = changes[1]["args"]
    assert deploy["channel"] == "3.10/stable"
    assert deploy["options"] == {
        "octal": 15,
        "hex": 31,
        "whole": 2,
        "text": "017",
        "stamp": "2024-01-02",
        "flag": True,
        "none": None,
    }
    assert changes[2]["method"] == "expose"
    assert changes[3]["args"]["annotations"] == {"n": "10", "f": "1.50", "b": "yes"}


def test_a_mistyped_value_empties_the_document() -> None:
    # juju/charm's BundleData.UnmarshalYAML keeps nothing when yaml.v2 reports a type error, and
    # parseBundleParts ignores "yaml: unmarshal errors", so verification sees no applications.
    bundle = "applications:\n  a:\n    charm: a\n    num_units: 1\n    to: 0\n"
    assert get_changes_map_args(bundle) == ([], ["at least one application must be specified"])


def test_local_charm_archive_manifest_bases_win(tmp_path: Path) -> None:
    # core/charm ComputedBases: a manifest's bases take precedence over metadata series.
    import zipfile

    archive = tmp_path / "app.charm"
    with zipfile.ZipFile(archive, "w") as charm:
        charm.writestr("metadata.yaml", "name: app\nseries: [focal]\n")
        charm.writestr("manifest.yaml", "bases:\n- name: ubuntu\n  channel: '22.04'\n  architectures: [amd64]\n")
    changes, _ = get_changes_map_args(f"applications:\n  app:\n    charm: {archive}\n")
    assert changes[0]["args"] == {"charm": str(archive), "base": "ubuntu@22.04/stable"}


def test_libjuju_style_overlay_removes_an_application() -> None:
    # libjuju joins the bundle and its overlays with "---" and blanks out "null".
    bundle = "applications:\n  a: {charm: a}\n  b: {charm: b}\nrelations: [[a, b]]\n---\napplications:\n  b: \n"
    changes, _ = get_changes_map_args(bundle)
    assert [c["id"] for c in changes] == ["addCharm-0", "deploy-1"]


# ---------------------------------------------------------------------------------------------
# python-libjuju parses every change it is given, the way BundleHandler.execute_plan does.
# ---------------------------------------------------------------------------------------------


def libjuju_change_types() -> dict[str, Any]:
    """method -> libjuju change class, the same list BundleHandler.__init__ registers."""
    from juju import bundle as libjuju_bundle

    classes: list[Any] = [
        libjuju_bundle.AddApplicationChange,
        libjuju_bundle.AddCharmChange,
        libjuju_bundle.AddMachineChange,
        libjuju_bundle.AddRelationChange,
        libjuju_bundle.AddUnitChange,
        libjuju_bundle.CreateOfferChange,
        libjuju_bundle.ConsumeOfferChange,
        libjuju_bundle.ExposeChange,
        libjuju_bundle.ScaleChange,
        libjuju_bundle.SetAnnotationsChange,
    ]
    return {cls.method(): cls for cls in classes}


def all_outputs() -> list[tuple[str, list[dict[str, Any]], list[str]]]:
    """(case name, changes, errors) for every bundle this module deploys successfully."""
    outputs = [(c["name"], *get_changes_map_args(c["bundle"], c.get("bundle_url", ""))) for c in JUJU_CASES]
    return [*outputs, ("series", *get_changes_map_args(SERIES_BUNDLE))]


def test_libjuju_parses_every_change() -> None:
    from juju import bundle as libjuju_bundle
    from juju.client import client

    change_types = libjuju_change_types()
    parsed = 0
    for name, changes, errors in all_outputs():
        results: Any = client.BundleChangesMapArgsResults.from_json({"changes": changes, "errors": errors})
        assert not any(results.errors), name
        for step in libjuju_bundle.ChangeSet(results.changes).sorted():
            if step.method == "grantOfferAccess":  # Juju emits it; libjuju has no class for it
                continue
            change = change_types[step.method](step.id_, step.requires, step.args)
            for key, attribute in type(change)._toPy.items():
                assert getattr(change, attribute) == step.args.get(key), (name, step.id_, key)
            assert str(change)
            parsed += 1
    assert parsed > 150


def test_libjuju_orders_the_changes_consistently() -> None:
    from juju import bundle as libjuju_bundle
    from juju.client import client

    for name, changes, errors in all_outputs():
        results: Any = client.BundleChangesMapArgsResults.from_json({"changes": changes, "errors": errors})
        order = [step.id_ for step in libjuju_bundle.ChangeSet(results.changes).sorted()]
        seen: set[str] = set()
        for change_id in order:
            change = next(c for c in changes if c["id"] == change_id)
            assert set(change["requires"]) <= seen, (name, change_id)
            seen.add(change_id)
        assert sorted(order) == sorted(c["id"] for c in changes)


def test_module_exports() -> None:
    assert bundlechanges.get_changes_map_args is get_changes_map_args
    assert issubclass(bundlechanges.BundleChangesError, Exception)
