// The getTask-to-raw-echo ratio, measured in interleaved rounds so that load from other
// processes hits both sides of the ratio alike. deno bench runs each bench in one block,
// minutes apart on a busy machine; here every round measures each call back to back.
//
//   deno run --allow-net --allow-env --allow-read bench/roundtrip_ratio.ts [rounds] [calls]

import process from "node:process";
import { startBenchServer } from "./_server.ts";
import { formatMs, quantile } from "./_util.ts";

const rounds = Number(Deno.args[0] ?? 21);
const calls = Number(Deno.args[1] ?? 500);

const server = await startBenchServer();
const variants: Record<string, () => Promise<unknown>> = {
  "raw WebSocket echo": () => server.echo.roundTrip(server.taskJson),
  "raw WebSocket, frames of one capnweb call": server.mimicCall,
  "ping (capnweb root object)": () => server.wsClient.ping(),
  "getTask (capnweb, WebSocket)": () => server.wsClient.getTask({ id: server.taskId }),
};
const names = Object.keys(variants);
const wall = new Map<string, number[]>(names.map((n) => [n, []]));
const cpu = new Map<string, number[]>(names.map((n) => [n, []]));

for (let round = 0; round <= rounds; round++) {
  // Rotate the order so that no variant always runs right after another one.
  for (let k = 0; k < names.length; k++) {
    const name = names[(round + k) % names.length]!;
    const fn = variants[name]!;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await fn();
    const elapsed = (performance.now() - t0) / calls;
    const used = process.cpuUsage(cpu0);
    // Round 0 warms the JIT up and is not recorded.
    if (round > 0) {
      wall.get(name)!.push(elapsed);
      cpu.get(name)!.push((used.user + used.system) / 1000 / calls);
    }
  }
}

const med = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);
const base = "raw WebSocket echo";
const lines = [`${rounds} rounds of ${calls} sequential calls per variant, order rotated`];
lines.push("variant | median wall/call | median process CPU/call | median ratio to echo (wall)");
for (const name of names) {
  // The ratio of each round, then the median of those: a slow round slows both sides of it.
  const ratios = wall.get(name)!.map((w, i) => w / wall.get(base)![i]!);
  lines.push(
    `${name} | ${formatMs(med(wall.get(name)!))} | ${formatMs(med(cpu.get(name)!))} | ${
      med(ratios).toFixed(2)
    }x (rounds: ${quantile([...ratios].sort((a, b) => a - b), 0.1).toFixed(2)}x to ${
      quantile([...ratios].sort((a, b) => a - b), 0.9).toFixed(2)
    }x, p10 to p90)`,
  );
}
// deno-lint-ignore no-console
console.log(lines.join("\n"));
await server.close();
