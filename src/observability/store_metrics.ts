// Times every TaskStore call in one place: a proxy over the store, so that each store
// (memory, Deno KV, PostgreSQL, the application's own) is measured the same way, unchanged.

import type { TaskStore } from "../tasks/store.ts";
import type { HandlerMetrics } from "./metrics.ts";

/**
 * Wraps a store so that each method call that returns a promise is timed into
 * `a2a_store_operation_duration_seconds`. Everything else (properties, getters, `instanceof`,
 * optional methods being absent) reads through to the store as it is.
 *
 * @param store The store.
 * @param metrics Where the timings go.
 * @returns The measured store.
 */
export function measuredStore<S extends TaskStore>(store: S, metrics: HandlerMetrics): S {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, key) {
      // Read with the store as receiver: its getters use private fields.
      const value = Reflect.get(target, key, target);
      if (typeof value !== "function" || key === "constructor") return value;
      let fn = wrapped.get(key);
      if (fn === undefined) {
        // Called on the store itself, not the proxy: its methods use private fields.
        fn = typeof key !== "string" ? value.bind(target) : function (...args: unknown[]) {
          const start = performance.now();
          const out = Reflect.apply(value, target, args);
          if (!(out instanceof Promise)) return out;
          return out.then(
            (v) => {
              metrics.storeOperation(key, true, (performance.now() - start) / 1000);
              return v;
            },
            (err) => {
              metrics.storeOperation(key, false, (performance.now() - start) / 1000);
              throw err;
            },
          );
        };
        wrapped.set(key, fn);
      }
      return fn;
    },
  });
}
