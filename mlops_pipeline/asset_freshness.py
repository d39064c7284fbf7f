"""Whether an asset partition is materialized after its inputs (so materializing it again would
change nothing), from the instance's event log: one rule for ``mlops run`` and ``mlops compete``."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph


def latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None) -> int | None:
    """The event-log position of the partition's latest materialization (``None``: never made)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0].storage_id if records else None


def input_partitions(
    graph: BaseAssetGraph, key: dg.AssetKey, partition: str | None
) -> list[tuple[dg.AssetKey, str | None]]:
    """The partitions of the asset's inputs that ``partition`` reads (its own previous session aside)."""
    node = graph.get(key)
    inputs: list[tuple[dg.AssetKey, str | None]] = []
    for parent in sorted(node.parent_keys - {key}):
        parent_def = graph.get(parent).partitions_def
        if parent_def is None or node.partitions_def is None or partition is None:
            inputs.append((parent, None))
            continue
        mapped = graph.get_partition_mapping(
            key, parent
        ).get_upstream_mapped_partitions_result_for_partitions(
            node.partitions_def.empty_subset().with_partition_keys([partition]),
            node.partitions_def,
            parent_def,
        )
        inputs += [(parent, str(upstream)) for upstream in mapped.partitions_subset.get_partition_keys()]
    return inputs


def materialized_after(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str | None,
    inputs: list[tuple[dg.AssetKey, str | None]],
) -> bool:
    """Whether the partition is materialized after every materialization of ``inputs``."""
    own = latest_storage_id(instance, key, partition)
    if own is None:
        return False
    return all((latest_storage_id(instance, parent, upstream) or 0) < own for parent, upstream in inputs)


def fresh(
    graph: BaseAssetGraph, instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None
) -> bool:
    """Whether the partition is materialized after every materialization of the inputs it reads."""
    return materialized_after(instance, key, partition, input_partitions(graph, key, partition))
