// Shapes shared by the push dispatcher and the bindings: callback configs and live receivers.

import { z } from "zod";
import type { StreamEvent } from "../tasks/store.ts";
import { AuthenticationInfoSchema, type TaskPushNotificationConfig } from "../types/requests.ts";

/**
 * The `url` that a push config delivering to a live callback (rather than to a webhook) shows
 * in Get and List results.
 */
export const PUSH_CALLBACK_URL = "urn:a2a-capnweb:push-callback";

/**
 * The parameters of CreateTaskPushNotificationConfig when the events go to a callback on the
 * connection instead of a webhook: a TaskPushNotificationConfig without `url`.
 */
export type CallbackPushConfig = Omit<TaskPushNotificationConfig, "url">;

/**
 * A live receiver of a task's events, such as a capnweb callback: the push dispatcher holds it
 * in memory (it is never stored) and calls `deliver` for each event in order.
 */
export interface PushReceiver {
  /**
   * Delivers one event. Several calls may be in flight at once, made in order; a rejection
   * removes the config and closes the receiver.
   */
  deliver(event: StreamEvent): Promise<void>;
  /**
   * Called exactly once when the receiver is let go: its config was deleted or replaced, the
   * task reached a terminal state, a delivery failed, or the dispatcher closed.
   */
  close(): void;
}

const tenant = z.string().exactOptional();

/** A callback config as it arrives from the network: any `url` is refused. */
export const CallbackPushConfigSchema: z.ZodType<CallbackPushConfig> = z.object({
  tenant,
  id: z.string().exactOptional(),
  taskId: z.string().exactOptional(),
  url: z.undefined({ error: "url must be absent when the config delivers to a callback" })
    .optional(),
  token: z.string().exactOptional(),
  authentication: AuthenticationInfoSchema.exactOptional(),
}).transform(({ url: _, ...rest }) => rest);
