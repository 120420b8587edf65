// Shows text that Autoencoder Atelier nodes report (the saved model's path, a loaded model's card)
// on the node itself, in a read-only box that is never saved into workflows or prompts.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const SHOW_TEXT = { AtelierSaveAutoencoder: "saved_to", AtelierLoadAutoencoder: "model_info" };

function showText(node, name, text) {
  let widget = node.widgets?.find((w) => w.name === name);
  if (!widget) {
    const box = document.createElement("textarea");
    box.className = "comfy-multiline-input";
    box.readOnly = true;
    box.style.opacity = 0.75;
    widget = node.addDOMWidget(name, "atelier_text", box, {
      getValue: () => box.value,
      setValue: (v) => { box.value = v; },
      serialize: false,
    });
    widget.serialize = false;
  }
  widget.value = text;
  // Grow the node (never shrink it) so the whole text is readable without resizing by hand.
  const [w, h] = node.size;
  const [cw, ch] = node.computeSize();
  node.setSize([Math.max(w, cw), Math.max(h, ch, 130 + 15 * text.split("\n").length)]);
  app.graph?.setDirtyCanvas(true, true);
}

// The card of the model picked in Load Autoencoder, read from the file's header by the pack's route.
async function showCard(node) {
  const name = node.widgets?.find((w) => w.name === "ae_name")?.value;
  if (typeof name !== "string" || !name.endsWith(".safetensors")) return;
  try {
    const res = await api.fetchApi(`/atelier/model_card?name=${encodeURIComponent(name)}`);
    const body = await res.json();
    showText(node, "model_info", body.text ?? body.error ?? "");
  } catch {
    // No route (an older pack on the server): the card still appears when the node runs.
  }
}

// Search aliases for the node search box, when the server did not send them (ComfyUI 0.3.64 does not).
let aliases = {};

function addAliases(defs) {
  for (const def of defs) {
    if (aliases[def.name] && !def.search_aliases?.length) def.search_aliases = aliases[def.name];
  }
}

app.registerExtension({
  name: "AutoencoderAtelier.ShowText",
  async addCustomNodeDefs(defs) {
    if (!Object.values(defs).some((d) => d.name?.startsWith("Atelier") && !d.search_aliases?.length)) return;
    try {
      aliases = await (await api.fetchApi("/atelier/search_aliases")).json();
      addAliases(Object.values(defs));
    } catch {
      // Without the route the nodes are still found by their names.
    }
  },
  // Newer frontends (1.58) rebuild the search from fresh server definitions when the lists are refreshed
  // (R, or after a model is saved), without addCustomNodeDefs: add the aliases again.
  beforeRegisterVueAppNodeDefs(defs) {
    addAliases(defs);
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = SHOW_TEXT[nodeData.name];
    if (!name) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      showText(this, name, (message?.text ?? []).join("\n"));
    };
  },
  nodeCreated(node) {
    if (node.comfyClass !== "AtelierLoadAutoencoder") return;
    const widget = node.widgets?.find((w) => w.name === "ae_name");
    if (!widget) return;
    const callback = widget.callback;
    widget.callback = function () {
      const result = callback?.apply(this, arguments);
      showCard(node);
      return result;
    };
    setTimeout(() => showCard(node), 0); // after a loaded workflow has set the widget's value
  },
});
