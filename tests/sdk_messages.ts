// Requests in the official SDK's own types (`@a2a-js/sdk`), for the tests that drive its client:
// its types have every field present, so a message spells out the empty ones.

import { type Message as SdkMessage, Role, type SendMessageRequest } from "@a2a-js/sdk";

/**
 * A user text message in the SDK's shape.
 *
 * @param text The text.
 * @param taskId The task it continues ("" for a new one).
 * @returns The message.
 */
export function sdkMessage(text: string, taskId = ""): SdkMessage {
  return {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId,
    role: Role.ROLE_USER,
    parts: [{
      content: { $case: "text", value: text },
      metadata: undefined,
      filename: "",
      mediaType: "",
    }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/**
 * A SendMessage request in the SDK's shape for a new task with one text message.
 *
 * @param text The text.
 * @param returnImmediately Answer before the task ends.
 * @returns The request.
 */
export function sdkSend(
  text: string,
  returnImmediately = false,
): SendMessageRequest & { message: SdkMessage } {
  return {
    tenant: "",
    message: sdkMessage(text),
    configuration: {
      acceptedOutputModes: [],
      taskPushNotificationConfig: undefined,
      returnImmediately,
    },
    metadata: undefined,
  };
}
