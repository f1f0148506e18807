/** Choose Teacher / Choose Student: a hub id, or a folder through an open dialog. */
import * as vscode from 'vscode';

export async function chooseModel(role: 'teacher' | 'student'): Promise<string | undefined> {
  const config = vscode.workspace.getConfiguration('distillLens');
  const current = config.get<string>(role, '');
  const items: (vscode.QuickPickItem & { action: 'folder' | 'hub' | 'keep' })[] = [
    {
      label: '$(folder-opened) Choose a folder…',
      description: 'Hugging Face ONNX layout, or config.json + model.safetensors',
      action: 'folder',
    },
    {
      label: '$(cloud-download) Enter a hub model id…',
      description: 'e.g. Xenova/gpt2 (needs distillLens.allowRemoteModels)',
      action: 'hub',
    },
  ];
  if (current) items.push({ label: `$(check) Keep ${current}`, action: 'keep' });
  const pick = await vscode.window.showQuickPick(items, {
    title: `Distill Lens: choose the ${role} model`,
    placeHolder: current ? `current: ${current}` : `no ${role} set`,
  });
  if (!pick || pick.action === 'keep') return undefined;
  let value: string | undefined;
  if (pick.action === 'folder') {
    const uris = await vscode.window.showOpenDialog({
      canSelectFolders: true,
      canSelectFiles: false,
      canSelectMany: false,
      openLabel: `Use as ${role}`,
      title: `Distill Lens: ${role} model folder`,
    });
    value = uris?.[0]?.fsPath;
  } else {
    value = await vscode.window.showInputBox({
      title: `Distill Lens: ${role} hub model id`,
      prompt: 'owner/name on huggingface.co',
      value: current,
      validateInput: (v) =>
        /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(v.trim())
          ? undefined
          : 'A hub id looks like owner/name, e.g. HuggingFaceTB/SmolLM2-135M',
    });
    value = value?.trim();
  }
  if (!value) return undefined;
  await config.update(role, value, vscode.ConfigurationTarget.Global);
  return value;
}
