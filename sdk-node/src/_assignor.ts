/**
 * The "roundrobin" partition assignment, computed the way Java's RoundRobinAssignor and aiokafka's
 * RoundRobinPartitionAssignor compute it, so a group mixing Node, Python and Java workers gets the
 * same kind of assignment whichever member the broker makes leader.
 *
 * @platformatic/kafka's own roundRobinAssigner is not usable in a shared group: it assigns only the
 * leader's topics (partitions of a topic only other members subscribe to would never be consumed)
 * and ignores the members' subscriptions (a member could get a topic it never registered and
 * dead-letter its jobs). Here every partition of every subscribed topic goes to exactly one member
 * that subscribed to that topic.
 */
import type { ClusterMetadata, GroupPartitionsAssigner, GroupPartitionsAssignments } from '@platformatic/kafka'

/** Only the part of a member's subscription the assignment needs. */
export interface MemberSubscription {
  topics?: string[]
}

/** Only the part of the cluster metadata the assignment needs. */
export interface TopicsMetadata {
  topics: Map<string, { partitionsCount: number }>
}

/**
 * Lays out all partitions of the union of the members' topics sorted by (topic, partition) and the
 * members sorted by id, then deals the partitions out in turn, skipping a member not subscribed to
 * the partition's topic. Every member is in the result, with an empty map when it gets nothing.
 * A topic missing from the metadata (not created yet) is skipped; the next rebalance picks it up.
 */
export function roundRobinAssign (members: Map<string, MemberSubscription>, metadata: TopicsMetadata): GroupPartitionsAssignments[] {
  const memberIds = [...members.keys()].sort(compare)
  const subscribed = new Map(memberIds.map((id) => [id, new Set(members.get(id)?.topics ?? [])]))
  const topics = [...new Set(memberIds.flatMap((id) => [...(subscribed.get(id) ?? [])]))].sort(compare)
  const result = new Map<string, GroupPartitionsAssignments>(memberIds.map((memberId) => [memberId, { memberId, assignments: new Map() }]))

  let next = 0
  for (const topic of topics) {
    const partitionsCount = metadata.topics.get(topic)?.partitionsCount ?? 0
    for (let partition = 0; partition < partitionsCount; partition++) {
      // Some member is subscribed (the topic comes from a subscription), so this ends within one round.
      let memberId = memberIds[next % memberIds.length] as string
      while (subscribed.get(memberId)?.has(topic) !== true) {
        next++
        memberId = memberIds[next % memberIds.length] as string
      }
      next++
      const assignments = (result.get(memberId) as GroupPartitionsAssignments).assignments
      let forTopic = assignments.get(topic)
      if (forTopic === undefined) {
        forTopic = { topic, partitions: [] }
        assignments.set(topic, forTopic)
      }
      forTopic.partitions.push(partition)
    }
  }
  return [...result.values()]
}

/** The Consumer's `partitionAssigner` option; the leader's own topic set is deliberately ignored. */
export const partitionAssigner: GroupPartitionsAssigner = (_current, members, _leaderTopics, metadata: ClusterMetadata) =>
  roundRobinAssign(members, metadata)

// Code-unit order, like Java's String.compareTo and Python's str ordering for these ASCII names.
function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
