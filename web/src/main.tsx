import { render } from "preact";
import { App } from "./App";
import { wipeLeftovers } from "./matrix";
import "./style.css";

wipeLeftovers().finally(() => render(<App />, document.getElementById("app")!));
