/**
 * Which offsets may be committed. A job's offset is committed only after its result was acknowledged,
 * and never past a job that is still running: the committed position of a partition is the lowest
 * offset still in flight (or one past the highest seen when nothing is). Jobs of one partition are
 * started in offset order, so a Set's insertion order keeps the lowest in-flight offset first.
 */

interface PartitionState {
  inFlight: Set<bigint>
  /** One past the highest offset started; the position when nothing is in flight. */
  next: bigint
  /** Last position sent to Kafka (or known from the group), to skip no-op commits. */
  committed: bigint
}

export interface CommitPosition {
  topic: string
  partition: number
  offset: bigint
}

export class OffsetTracker {
  readonly #partitions = new Map<string, PartitionState>()

  /**
   * Registers a record before its job starts. Returns false for a record at or below a position
   * already seen, which happens when the client refetches from the committed offset after a
   * rebalance that kept this partition here: that job already ran or is running.
   */
  begin (topic: string, partition: number, offset: bigint): boolean {
    const key = tp(topic, partition)
    let state = this.#partitions.get(key)
    if (state === undefined) {
      state = { inFlight: new Set(), next: offset, committed: -1n }
      this.#partitions.set(key, state)
    } else if (offset < state.next) {
      return false
    }
    state.inFlight.add(offset)
    state.next = offset + 1n
    return true
  }

  /** The job's result was acknowledged (or it was dead-lettered): its offset may be committed. */
  done (topic: string, partition: number, offset: bigint): void {
    this.#partitions.get(tp(topic, partition))?.inFlight.delete(offset)
  }

  /** Position up to which every started job is done (what a commit would write), if known. */
  position (topic: string, partition: number): bigint | undefined {
    const state = this.#partitions.get(tp(topic, partition))
    return state === undefined ? undefined : positionOf(state)
  }

  /** Positions that moved since the last `markCommitted`. */
  pending (): CommitPosition[] {
    const out: CommitPosition[] = []
    for (const [key, state] of this.#partitions) {
      const offset = positionOf(state)
      if (offset > state.committed) out.push({ ...parse(key), offset })
    }
    return out
  }

  markCommitted (positions: CommitPosition[]): void {
    for (const p of positions) {
      const state = this.#partitions.get(tp(p.topic, p.partition))
      if (state !== undefined && p.offset > state.committed) state.committed = p.offset
    }
  }

  /**
   * Keeps only the partitions in `assigned` (after a rebalance). A partition that moved to another
   * worker must not be committed by this one any more: its new owner commits its own progress.
   * Jobs of revoked partitions that are still running finish and send their results anyway.
   */
  retain (assigned: Set<string>): void {
    for (const key of this.#partitions.keys()) {
      if (!assigned.has(key)) this.#partitions.delete(key)
    }
  }

  /** Offsets held in memory (started, not done) over all partitions: bounded by the jobs in flight. */
  get size (): number {
    let n = 0
    for (const state of this.#partitions.values()) n += state.inFlight.size
    return n
  }

  /** Partitions tracked: bounded by the assignment. */
  get partitions (): number {
    return this.#partitions.size
  }

  isTracked (topic: string, partition: number): boolean {
    return this.#partitions.has(tp(topic, partition))
  }
}

export function tp (topic: string, partition: number): string {
  return `${topic}:${partition}`
}

function parse (key: string): { topic: string, partition: number } {
  const i = key.lastIndexOf(':')
  return { topic: key.slice(0, i), partition: Number(key.slice(i + 1)) }
}

function positionOf (state: PartitionState): bigint {
  const first = state.inFlight.values().next()
  return first.done === true ? state.next : first.value
}
