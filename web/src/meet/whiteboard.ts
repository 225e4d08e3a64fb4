// The shared whiteboard's model: a list of drawing operations in coordinates from 0 to 1 (so
// every screen size shows the same board), rendered onto a canvas. Operations travel encrypted
// as data packets (see session.ts); a late joiner gets the current list from someone already in
// the meeting. "clear" drops everything drawn before it.

export type Tool = "pen" | "line" | "rect" | "ellipse" | "text";

export type Op =
  | { id: string; kind: "path"; color: string; width: number; points: number[] }
  | { id: string; kind: "line" | "rect" | "ellipse"; color: string; width: number; points: number[] }
  | { id: string; kind: "text"; color: string; width: number; points: number[]; text: string }
  | { id: string; kind: "clear" };

/** Points per freehand stroke (x and y each): keeps one operation well inside a data packet. */
export const MAX_POINTS = 1500;
/** Characters of a text label. */
export const MAX_TEXT = 200;
/** Operations kept: a board with more starts dropping its oldest strokes. */
export const MAX_OPS = 2000;
/** UTF-8 bytes of the kept operations as JSON (what a late joiner is sent): beyond this the
 * oldest strokes go too. 2000 full-length strokes would be about 40 MB. */
export const MAX_BOARD_BYTES = 1_000_000;
export const COLORS = ["#1f2937", "#dc2626", "#2563eb", "#16a34a", "#d97706"] as const;
/** The board's aspect ratio (16:9), the same for everyone. */
export const ASPECT = 16 / 9;

function num(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** An operation from the network, checked; null if malformed. */
export function checkOp(v: unknown): Op | null {
  if (!v || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  if (typeof o.id !== "string" || o.id.length > 64) return null;
  if (o.kind === "clear") return { id: o.id, kind: "clear" };
  if (!["path", "line", "rect", "ellipse", "text"].includes(o.kind as string)) return null;
  if (typeof o.color !== "string" || !(COLORS as readonly string[]).includes(o.color)) return null;
  if (!num(o.width) || o.width <= 0 || o.width > 0.05) return null;
  if (!Array.isArray(o.points) || o.points.length < 2 || o.points.length > MAX_POINTS * 2) return null;
  if (!o.points.every((p) => num(p) && p >= -0.1 && p <= 1.1)) return null;
  if (o.kind === "text") {
    if (typeof o.text !== "string" || o.text.length === 0 || o.text.length > MAX_TEXT) return null;
    return { id: o.id, kind: "text", color: o.color, width: o.width, points: o.points.slice(0, 2), text: o.text };
  }
  if (o.kind !== "path" && o.points.length !== 4) return null;
  return { id: o.id, kind: o.kind as "path", color: o.color, width: o.width, points: o.points as number[] };
}

const utf8 = new TextEncoder();

export class Board {
  ops: Op[] = [];
  /** UTF-8 bytes of each kept operation's JSON, and their sum. */
  private sizes: number[] = [];
  bytes = 0;
  private seen = new Set<string>();

  /** Empties the board, forgetting what it has seen (a new session starts from nothing). */
  clear(): void {
    this.ops = [];
    this.sizes = [];
    this.bytes = 0;
    this.seen.clear();
  }

  /** Adds an operation once (snapshots from several people may repeat it); true if new. */
  add(op: Op): boolean {
    if (this.seen.has(op.id)) return false;
    this.seen.add(op.id);
    if (op.kind === "clear") {
      this.ops = [];
      this.sizes = [];
      this.bytes = 0;
    } else {
      const n = utf8.encode(JSON.stringify(op)).length;
      this.ops.push(op);
      this.sizes.push(n);
      this.bytes += n;
      let drop = 0;
      while (this.ops.length - drop > MAX_OPS || (this.bytes > MAX_BOARD_BYTES && this.ops.length - drop > 1)) {
        this.bytes -= this.sizes[drop];
        drop++;
      }
      if (drop) {
        this.ops.splice(0, drop);
        this.sizes.splice(0, drop);
      }
    }
    return true;
  }
}

export function draw(ctx: CanvasRenderingContext2D, ops: readonly Op[], w: number, h: number, preview?: Op | null): void {
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, w, h);
  for (const op of preview ? [...ops, preview] : ops) drawOp(ctx, op, w, h);
}

function drawOp(ctx: CanvasRenderingContext2D, op: Op, w: number, h: number): void {
  if (op.kind === "clear") return;
  ctx.strokeStyle = op.color;
  ctx.fillStyle = op.color;
  ctx.lineWidth = Math.max(1, op.width * w);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const p = op.points;
  switch (op.kind) {
    case "path": {
      ctx.beginPath();
      ctx.moveTo(p[0] * w, p[1] * h);
      for (let i = 2; i + 1 < p.length; i += 2) ctx.lineTo(p[i] * w, p[i + 1] * h);
      if (p.length === 2) ctx.lineTo(p[0] * w + 0.1, p[1] * h);
      ctx.stroke();
      break;
    }
    case "line":
      ctx.beginPath();
      ctx.moveTo(p[0] * w, p[1] * h);
      ctx.lineTo(p[2] * w, p[3] * h);
      ctx.stroke();
      break;
    case "rect":
      ctx.strokeRect(p[0] * w, p[1] * h, (p[2] - p[0]) * w, (p[3] - p[1]) * h);
      break;
    case "ellipse": {
      const cx = ((p[0] + p[2]) / 2) * w;
      const cy = ((p[1] + p[3]) / 2) * h;
      ctx.beginPath();
      ctx.ellipse(cx, cy, (Math.abs(p[2] - p[0]) / 2) * w, (Math.abs(p[3] - p[1]) / 2) * h, 0, 0, Math.PI * 2);
      ctx.stroke();
      break;
    }
    case "text":
      ctx.font = `${Math.round(Math.max(12, op.width * 6 * w))}px sans-serif`;
      ctx.textBaseline = "top";
      ctx.fillText(op.text, p[0] * w, p[1] * h);
      break;
  }
}

/** Rounds a coordinate to 4 decimals (1/10 000 of the board is finer than any screen). */
export function q(v: number): number {
  return Math.round(Math.min(1.05, Math.max(-0.05, v)) * 10000) / 10000;
}
