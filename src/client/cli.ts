// The small CLI that `deno run -A client.ts URL "text"` runs. A module of its own, loaded only
// when client.ts is the main module, so that the browser bundle of client.ts leaves it out.

import type { StreamEvent } from "../tasks/store.ts";
import type { SendMessageRequest } from "../types/requests.ts";
import { userMessage } from "../types/messages.ts";

/** The demo server's default token, used when A2A_TOKEN is unset. */
export const DEMO_TOKEN = "token-alice";

/** What the CLI needs of A2AClient, passed in so that this module does not import client.ts. */
export interface CliClientFactory {
  connect(
    baseUrl: string,
    options: { token?: string },
  ): Promise<
    AsyncDisposable & {
      sendStreamingMessage(request: SendMessageRequest): AsyncIterable<StreamEvent>;
    }
  >;
}

/** Where the CLI writes: standard output and standard error. */
export interface CliOutput {
  /** Writes a line of output. */
  out(line: string): void;
  /** Writes a line to standard error. */
  err(line: string): void;
}

const CONSOLE: CliOutput = {
  // deno-lint-ignore no-console
  out: (line) => console.log(line),
  // deno-lint-ignore no-console
  err: (line) => console.error(line),
};

/**
 * Sends a message to the agent at a base URL and prints each stream event as one JSON line.
 *
 * @param args `BASE_URL` and the words of the message.
 * @param client A2AClient.
 * @param options The token (`A2A_TOKEN`: unset for the demo token, empty for none) and where
 *   to write.
 * @returns The exit code: 0, or 2 for a usage error.
 */
export async function runCli(
  args: string[],
  client: CliClientFactory,
  options: { token?: string | undefined; output?: CliOutput } = {},
): Promise<number> {
  const output = options.output ?? CONSOLE;
  const [base, ...words] = args;
  if (!base || words.length === 0 || base === "--help" || base === "-h") {
    output.err('Usage: deno run -A client.ts BASE_URL "message text"');
    output.err("The bearer token comes from A2A_TOKEN (empty for an open agent); without it the");
    output.err(`demo server's ${DEMO_TOKEN} is used.`);
    return base === "--help" || base === "-h" ? 0 : 2;
  }
  let token = options.token;
  if (token === undefined) {
    // Said out loud: a user who forgot to export A2A_TOKEN would otherwise get an
    // AuthenticationError from a real agent and no hint why.
    output.err(`A2A_TOKEN is not set: using the demo server's token ${DEMO_TOKEN}`);
    token = DEMO_TOKEN;
  }
  // An empty A2A_TOKEN is none, for an open agent (which ignores a token anyway).
  await using connected = await client.connect(base, token === "" ? {} : { token });
  for await (
    const event of connected.sendStreamingMessage({ message: userMessage(words.join(" ")) })
  ) {
    output.out(JSON.stringify(event));
  }
  return 0;
}
