// Shows text that Autoencoder Atelier nodes report (the saved model's path, a loaded model's card)
// on the node itself, in a read-only box that is never saved into workflows or prompts.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const SHOW_TEXT = { AtelierSaveAutoencoder: "saved_to", AtelierLoadAutoencoder: "model_info" };

app.registerExtension({
  name: "AutoencoderAtelier.ShowText",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = SHOW_TEXT[nodeData.name];
    if (!name) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = (message?.text ?? []).join("\n");
      let widget = this.widgets?.find((w) => w.name === name);
      if (!widget) {
        widget = ComfyWidgets.STRING(this, name, ["STRING", { multiline: true }], app).widget;
        widget.serialize = false;
        widget.options = { ...(widget.options ?? {}), serialize: false };
        if (widget.inputEl) {
          widget.inputEl.readOnly = true;
          widget.inputEl.style.opacity = 0.75;
        }
      }
      widget.value = text;
      app.graph?.setDirtyCanvas(true, true);
    };
  },
});
