/**
 * The client of Baton's HTTP API. Public API: {@link dev.baton.BatonClient} (built by
 * {@link dev.baton.BatonClientBuilder}) and its errors, all subclasses of {@link dev.baton.ApiError} (itself a
 * {@link dev.baton.worker.BatonError}): {@link dev.baton.BadRequest} (400), {@link dev.baton.Unauthorized} (401),
 * {@link dev.baton.Forbidden} (403), {@link dev.baton.NotFound} (404), {@link dev.baton.Conflict} (409),
 * {@link dev.baton.RequestTooLarge} (413), {@link dev.baton.ValidationFailed} (422),
 * {@link dev.baton.ServiceUnavailable} (503), {@link dev.baton.ApiConnectionError} (no answer) and
 * {@link dev.baton.WaitTimeout}. Everything else in the package is package-private. The worker is in
 * {@link dev.baton.worker}.
 */
package dev.baton;
