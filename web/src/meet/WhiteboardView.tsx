// The shared whiteboard on screen: pen, line, rectangle, ellipse, text, colours, clear, and
// export as PNG (made in the browser from the canvas; nothing is uploaded).

import { useEffect, useRef, useState } from "preact/hooks";
import { t } from "../i18n";
import type { MeetSession } from "./session";
import { ASPECT, COLORS, draw, MAX_POINTS, MAX_TEXT, q, type Op, type Tool } from "./whiteboard";

const TOOLS: { tool: Tool; key: "toolPen" | "toolLine" | "toolRect" | "toolEllipse" | "toolText" }[] = [
  { tool: "pen", key: "toolPen" },
  { tool: "line", key: "toolLine" },
  { tool: "rect", key: "toolRect" },
  { tool: "ellipse", key: "toolEllipse" },
  { tool: "text", key: "toolText" },
];
const LINE_WIDTH = 0.004;

export function Whiteboard({ session }: { session: MeetSession }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const wrap = useRef<HTMLDivElement>(null);
  const [tool, setTool] = useState<Tool>("pen");
  const [color, setColor] = useState<string>(COLORS[0]);
  const [size, setSize] = useState({ w: 1280, h: 720 });
  const drawing = useRef<Op | null>(null);
  const [exportUrl, setExportUrl] = useState<string | null>(null);

  // The canvas has as many pixels as it shows (sharp lines at any size).
  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const fit = () => {
      const w = Math.max(320, Math.floor(el.clientWidth));
      const h = Math.floor(w / ASPECT);
      setSize({ w: Math.round(w * devicePixelRatio), h: Math.round(h * devicePixelRatio) });
    };
    fit();
    const ro = new ResizeObserver(fit);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const redraw = () => {
    const ctx = canvas.current?.getContext("2d");
    if (ctx) draw(ctx, session.board.ops, size.w, size.h, drawing.current);
  };
  useEffect(redraw);
  useEffect(() => session.subscribe(redraw), [session, size]);
  useEffect(() => () => void (exportUrl && URL.revokeObjectURL(exportUrl)), [exportUrl]);

  function at(e: PointerEvent): [number, number] {
    const r = canvas.current!.getBoundingClientRect();
    return [q((e.clientX - r.left) / r.width), q((e.clientY - r.top) / r.height)];
  }
  function down(e: PointerEvent) {
    if (e.button !== 0) return;
    const [x, y] = at(e);
    const id = crypto.randomUUID();
    if (tool === "text") {
      const text = window.prompt(t("whiteboardTextPrompt"))?.trim().slice(0, MAX_TEXT);
      if (text) void session.draw({ id, kind: "text", color, width: LINE_WIDTH, points: [x, y], text });
      return;
    }
    canvas.current!.setPointerCapture(e.pointerId);
    drawing.current =
      tool === "pen"
        ? { id, kind: "path", color, width: LINE_WIDTH, points: [x, y] }
        : { id, kind: tool, color, width: LINE_WIDTH, points: [x, y, x, y] };
    redraw();
  }
  function move(e: PointerEvent) {
    const op = drawing.current;
    if (!op || op.kind === "clear") return;
    const [x, y] = at(e);
    if (op.kind === "path") {
      if (op.points.length < MAX_POINTS * 2) op.points.push(x, y);
    } else {
      op.points[2] = x;
      op.points[3] = y;
    }
    redraw();
  }
  function up() {
    const op = drawing.current;
    drawing.current = null;
    if (op) void session.draw(op);
  }
  function exportPng() {
    canvas.current?.toBlob((blob) => {
      if (!blob) return;
      if (exportUrl) URL.revokeObjectURL(exportUrl);
      const url = URL.createObjectURL(blob);
      setExportUrl(url);
      const a = document.createElement("a");
      a.href = url;
      a.download = "whiteboard.png";
      a.click();
    }, "image/png");
  }

  return (
    <section class="whiteboard" aria-label={t("whiteboard")} data-testid="whiteboard">
      <div class="wb-tools" role="toolbar" aria-label={t("whiteboardTools")}>
        {TOOLS.map((x) => (
          <button
            key={x.tool}
            type="button"
            class="small"
            aria-pressed={tool === x.tool}
            onClick={() => setTool(x.tool)}
            data-testid={`tool-${x.tool}`}
          >
            {t(x.key)}
          </button>
        ))}
        {COLORS.map((c, i) => (
          <button
            key={c}
            type="button"
            class={`swatch swatch-${i}`}
            aria-pressed={color === c}
            aria-label={t("colour", { n: i + 1 })}
            onClick={() => setColor(c)}
          />
        ))}
        <button
          type="button"
          class="small"
          onClick={() => window.confirm(t("confirmClearBoard")) && void session.draw({ id: crypto.randomUUID(), kind: "clear" })}
        >
          {t("clearBoard")}
        </button>
        <button type="button" class="small" onClick={exportPng} data-testid="export-png">
          {t("exportPng")}
        </button>
      </div>
      <div class="wb-canvas" ref={wrap}>
        <canvas
          ref={canvas}
          width={size.w}
          height={size.h}
          onPointerDown={down}
          onPointerMove={move}
          onPointerUp={up}
          onPointerCancel={up}
          data-testid="board"
        />
      </div>
    </section>
  );
}
