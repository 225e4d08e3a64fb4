// whiteboard.ts: the board's model, what is accepted from the network, and its size caps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Board, checkOp, COLORS, MAX_BOARD_BYTES, MAX_OPS, MAX_POINTS, MAX_TEXT, q, type Op } from "../src/meet/whiteboard";

const pen = (id: string, points = [0.1, 0.1, 0.2, 0.2]): Op => ({ id, kind: "path", color: COLORS[0], width: 0.005, points });

test("strokes, shapes and text from the network are checked", () => {
  assert.deepEqual(checkOp(pen("a")), pen("a"));
  for (const kind of ["line", "rect", "ellipse"] as const) {
    const op = { id: kind, kind, color: COLORS[1], width: 0.01, points: [0, 0, 1, 1] };
    assert.deepEqual(checkOp(op), op);
    assert.equal(checkOp({ ...op, points: [0, 0, 1, 1, 0.5, 0.5] }), null, "a shape has two corners");
  }
  const text = { id: "t", kind: "text", color: COLORS[2], width: 0.01, points: [0.5, 0.5, 0.6, 0.6], text: "Hallo" };
  assert.deepEqual(checkOp(text), { ...text, points: [0.5, 0.5] });
  assert.equal(checkOp({ ...text, text: "" }), null);
  assert.equal(checkOp({ ...text, text: "x".repeat(MAX_TEXT + 1) }), null);
  assert.deepEqual(checkOp({ id: "c", kind: "clear", color: "ignored" }), { id: "c", kind: "clear" });
  // Malformed: unknown kind or colour, odd widths, points off the board or too many, long IDs.
  const bad: unknown[] = [
    null,
    "path",
    { ...pen("a"), kind: "image" },
    { ...pen("a"), color: "#ff00ff" },
    { ...pen("a"), width: 0 },
    { ...pen("a"), width: 0.2 },
    { ...pen("a"), width: Number.NaN },
    { ...pen("a"), points: [0.1] },
    { ...pen("a"), points: [0.1, 2] },
    { ...pen("a"), points: [0.1, "0.2"] },
    { ...pen("a"), points: new Array(MAX_POINTS * 2 + 2).fill(0.5) },
    { ...pen("a"), id: "x".repeat(65) },
    { ...pen("a"), id: 7 },
  ];
  for (const b of bad) assert.equal(checkOp(b), null, JSON.stringify(b)?.slice(0, 80));
  assert.ok(checkOp(pen("long", new Array(MAX_POINTS * 2).fill(0.5))));
});

test("an operation is added once; clear drops what was drawn before it", () => {
  const board = new Board();
  assert.ok(board.add(pen("a")));
  assert.ok(!board.add(pen("a")), "a repeat (several snapshots) is ignored");
  assert.ok(board.add(pen("b")));
  assert.equal(board.ops.length, 2);
  assert.ok(board.add({ id: "c", kind: "clear" }));
  assert.equal(board.ops.length, 0);
  assert.equal(board.bytes, 0);
  assert.ok(!board.add(pen("a")), "a stroke from before the clear does not come back");
  assert.ok(board.add(pen("d")));
  assert.deepEqual(board.ops.map((o) => o.id), ["d"]);
});

test("the snapshot for a late joiner rebuilds the same board", () => {
  const board = new Board();
  board.add(pen("a"));
  board.add({ id: "r", kind: "rect", color: COLORS[3], width: 0.01, points: [0.1, 0.1, 0.4, 0.3] });
  board.add({ id: "t", kind: "text", color: COLORS[4], width: 0.01, points: [0.2, 0.2], text: "Befund" });
  // What session.ts sends: the kept operations as JSON, checked again on arrival.
  const wire = JSON.parse(JSON.stringify(board.ops)) as unknown[];
  const late = new Board();
  for (const o of wire) {
    const op = checkOp(o);
    assert.ok(op);
    late.add(op);
  }
  assert.deepEqual(late.ops, board.ops);
  assert.equal(late.bytes, board.bytes);
  // Snapshots from several participants overlap; nothing is doubled.
  for (const o of wire) late.add(checkOp(o)!);
  assert.equal(late.ops.length, 3);
});

test("a board keeps at most MAX_OPS operations, dropping the oldest", () => {
  const board = new Board();
  for (let i = 0; i < MAX_OPS + 5; i++) board.add(pen(`p${i}`));
  assert.equal(board.ops.length, MAX_OPS);
  assert.equal(board.ops[0].id, "p5");
  assert.equal(board.bytes, board.ops.reduce((n, o) => n + new TextEncoder().encode(JSON.stringify(o)).length, 0));
});

test("a board keeps at most MAX_BOARD_BYTES, but always the newest stroke", () => {
  const board = new Board();
  const big = (id: string) => pen(id, new Array(MAX_POINTS * 2).fill(0.123456789));
  let n = 0;
  while (board.ops.length === n) board.add(big(`b${n++}`));
  assert.ok(board.bytes <= MAX_BOARD_BYTES, `${board.bytes}`);
  assert.equal(board.ops[board.ops.length - 1].id, `b${n - 1}`);
  assert.ok(board.ops.length < n);
  board.clear();
  assert.equal(board.ops.length, 0);
  assert.ok(board.add(big("b0")), "after clear() everything is new again");
});

test("coordinates are rounded and kept near the board", () => {
  assert.equal(q(0.123456), 0.1235);
  assert.equal(q(5), 1.05);
  assert.equal(q(-5), -0.05);
});
