package dev.baton.worker;

/**
 * A handler that also wants the job's metadata: {@code (payload, ctx) -> charge(payload,
 * ctx.idempotencyKey())}. A separate interface from {@link JobHandler} because Java picks an overload
 * for an implicitly typed lambda by its arity, so both lambda shapes compile against {@code register}.
 */
@FunctionalInterface
public interface ContextJobHandler {
  Object handle(Object payload, JobContext ctx) throws Exception;
}
