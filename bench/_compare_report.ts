// The output of bench/compare.ts: a markdown table (printed, and written between markers into
// BENCHMARKS.md) and an SVG bar chart of the ratios, drawn by hand so no library is needed.

/** p50 and p99 of a latency, in milliseconds. */
export interface Pct {
  p50: number;
  p99: number;
}

/** Everything one run measured. */
export interface Report {
  quick: boolean;
  date: string;
  size: Record<string, number>;
  latency: { op: string; floor: Pct; capnweb: Pct; jsonrpc: Pct; sdk: Pct }[];
  throughput: { label: string; capnweb: number; jsonrpc: number; sdk: number }[];
  streaming: {
    label: string;
    capnweb: number;
    jsonrpc: number;
    sdkOnOurs: number;
    sdk: number;
    /** When the SDK did not finish within its cap: the rate it stayed under. */
    sdkBound?: number;
  }[];
  memory: {
    sessions: number;
    what: string;
    ours: { rss: number; heapUsed: number };
    sdk: { rss: number; heapUsed: number } | null;
  }[];
}

const START = "<!-- compare:start -->";
const END = "<!-- compare:end -->";
const HEADING = "## Side by side with the official SDK";

function ms(v: number): string {
  return v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`;
}

function rate(v: number): string {
  return Number.isNaN(v) ? "–" : Math.round(v).toLocaleString("en-US");
}

function x(v: number): string {
  return Number.isFinite(v) ? `**${v.toFixed(v >= 10 ? 0 : 1)}x**` : "–";
}

function mib(v: number): string {
  return `${(v / 1024 / 1024).toFixed(0)} MiB`;
}

/** A row of the table: name, floor, capnweb, our JSON-RPC, SDK, and the two ratios. */
type Row = [string, string, string, string, string, number, number];

function rows(r: Report): Row[] {
  const out: Row[] = [];
  for (const l of r.latency) {
    for (const q of ["p50", "p99"] as const) {
      out.push([
        `${l.op}, sequential, ${q}`,
        ms(l.floor[q]),
        ms(l.capnweb[q]),
        ms(l.jsonrpc[q]),
        ms(l.sdk[q]),
        l.sdk[q] / l.capnweb[q],
        l.sdk[q] / l.jsonrpc[q],
      ]);
    }
  }
  for (const t of r.throughput) {
    out.push([
      `sendMessage/s, ${t.label}`,
      "",
      rate(t.capnweb),
      rate(t.jsonrpc),
      rate(t.sdk),
      t.capnweb / t.sdk,
      t.jsonrpc / t.sdk,
    ]);
  }
  for (const s of r.streaming) {
    const sdkClient = Number.isNaN(s.sdkOnOurs) ? "" : ` (SDK client: ${rate(s.sdkOnOurs)})`;
    const sdk = s.sdkBound === undefined ? s.sdk : s.sdkBound;
    const more = s.sdkBound === undefined ? "" : "> ";
    out.push([
      `events/s, ${s.label}`,
      "",
      rate(s.capnweb),
      rate(s.jsonrpc) + sdkClient,
      s.sdkBound === undefined ? rate(s.sdk) : `< ${rate(s.sdkBound)} (not done in the cap)`,
      s.capnweb / sdk,
      s.jsonrpc / sdk,
    ]);
    if (more) out[out.length - 1]![0] += " (ratios are lower bounds)";
  }
  return out;
}

/**
 * The generated part of the section: the table and the run's parameters.
 *
 * @param r The run.
 * @returns Markdown.
 */
export function renderTable(r: Report): string {
  const lines = [
    `Run ${r.date}${r.quick ? " (quick mode)" : ""}; ${
      Object.entries(r.size).map(([k, v]) => `${k} ${v}`).join(", ")
    }. Ratios are how many times better ours is than the SDK (above 1: ours is faster).`,
    "",
    "| Measurement | raw WS echo | ours, capnweb | ours, JSON-RPC SSE | SDK (Node, express) | capnweb vs SDK | JSON-RPC vs SDK |",
    "| --- | --: | --: | --: | --: | --: | --: |",
    ...rows(r).map(([name, floor, a, b, c, ra, rb]) =>
      `| ${name} | ${floor} | ${a} | ${b} | ${c} | ${x(ra)} | ${x(rb)} |`
    ),
  ];
  if (r.memory.length > 0) {
    lines.push(
      "",
      "| Idle sessions | ours: RSS, heap | SDK: RSS, heap |",
      "| --- | --: | --: |",
      ...r.memory.map((m) =>
        `| ${m.sessions.toLocaleString("en-US")} ${m.what} | ${mib(m.ours.rss)}, ${
          mib(m.ours.heapUsed)
        } | ${m.sdk ? `${mib(m.sdk.rss)}, ${mib(m.sdk.heapUsed)}` : "–"} |`
      ),
    );
  }
  return lines.join("\n");
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * A horizontal bar chart of the ratios, on a log scale centred on 1x.
 *
 * @param r The run.
 * @returns SVG text.
 */
export function renderSvg(r: Report): string {
  const data = rows(r);
  const labelW = 330;
  const plotW = 460;
  const rowH = 34;
  const top = 56;
  const h = top + data.length * rowH + 40;
  const w = labelW + plotW + 30;
  const maxLog = Math.max(
    2,
    ...data.flatMap(([, , , , , a, b]) =>
      [a, b].filter(Number.isFinite).map((v) => Math.abs(Math.log2(v)))
    ),
  );
  const span = Math.ceil(maxLog);
  const cx = labelW + plotW / 2;
  const px = (v: number) => cx + (Math.log2(v) / span) * (plotW / 2);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">Ours vs @a2a-js/sdk: how many times better (log scale)</text>`,
    `<rect x="10" y="30" width="12" height="10" fill="#2b6cb0"/><text x="26" y="39">capnweb</text>`,
    `<rect x="100" y="30" width="12" height="10" fill="#dd8a2b"/><text x="116" y="39">our JSON-RPC + SSE</text>`,
  ];
  for (let k = -span; k <= span; k++) {
    const gx = cx + (k / span) * (plotW / 2);
    const v = 2 ** k;
    out.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${h - 34}" stroke="${
        k === 0 ? "#333" : "#ddd"
      }"/>`,
      `<text x="${gx}" y="${h - 20}" text-anchor="middle" fill="#555">${
        v >= 1 ? v : `1/${1 / v}`
      }x</text>`,
    );
  }
  out.push(`<text x="${cx + 4}" y="${h - 6}" fill="#555">ours better →</text>`);
  out.push(`<text x="${cx - 4}" y="${h - 6}" text-anchor="end" fill="#555">← SDK better</text>`);
  data.forEach(([name, , , , , a, b], i) => {
    const y = top + i * rowH;
    out.push(`<text x="${labelW - 8}" y="${y + 18}" text-anchor="end">${esc(name)}</text>`);
    [[a, "#2b6cb0", 3], [b, "#dd8a2b", 17]].forEach(([v, color, dy]) => {
      const value = v as number;
      if (!Number.isFinite(value)) return;
      const x1 = Math.min(cx, px(value));
      const bw = Math.max(1, Math.abs(px(value) - cx));
      out.push(
        `<rect x="${x1.toFixed(1)}" y="${y + (dy as number)}" width="${
          bw.toFixed(1)
        }" height="12" fill="${color}"/>`,
        `<text x="${(value >= 1 ? x1 + bw + 3 : x1 - 3).toFixed(1)}" y="${
          y + (dy as number) + 10
        }" font-size="10" text-anchor="${value >= 1 ? "start" : "end"}">${
          value.toFixed(1)
        }x</text>`,
      );
    });
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/**
 * Prints the table, replaces the generated part of BENCHMARKS.md's section (adding the section
 * at the end if it is missing), and writes docs/bench/compare.svg.
 *
 * @param root The repository root.
 * @param r The run.
 */
export async function writeReport(root: URL, r: Report): Promise<void> {
  const table = renderTable(r);
  // deno-lint-ignore no-console
  console.log(`\n${table}\n`);
  await Deno.mkdir(new URL("docs/bench/", root), { recursive: true });
  await Deno.writeTextFile(new URL("docs/bench/compare.svg", root), renderSvg(r));
  const path = new URL("BENCHMARKS.md", root);
  let md = await Deno.readTextFile(path);
  const block = `${START}\n\n${table}\n\n${END}`;
  const a = md.indexOf(START);
  const b = md.indexOf(END);
  if (a >= 0 && b > a) {
    md = md.slice(0, a) + block + md.slice(b + END.length);
  } else {
    md =
      `${md.trimEnd()}\n\n${HEADING}\n\n![Ratios, ours against the SDK](docs/bench/compare.svg)\n\n${block}\n`;
  }
  await Deno.writeTextFile(path, md);
  // deno fmt aligns the table and formats the SVG, so that `deno fmt --check` passes after a run.
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", "BENCHMARKS.md", "docs/bench/compare.svg"],
    cwd: root,
  }).output();
}
