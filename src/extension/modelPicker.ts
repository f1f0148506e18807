/** Choose Teacher / Choose Student: a hub id, a folder through an open dialog, or (the teacher) a served model. */
import * as vscode from 'vscode';
import { parseServedTeacher } from '../models/servedTeacher';

export async function chooseModel(role: 'teacher' | 'student'): Promise<string | undefined> {
  const config = vscode.workspace.getConfiguration('distillLens');
  const current = config.get<string>(role, '');
  const items: (vscode.QuickPickItem & { action: 'folder' | 'hub' | 'served' | 'keep' })[] = [
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
  if (role === 'teacher')
    items.push({
      label: '$(server) Enter a served teacher…',
      description: 'vLLM or SGLang: openai+http://host:8000/v1#model (divergences over its top K)',
      action: 'served',
    });
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
  } else if (pick.action === 'served') {
    value = await vscode.window.showInputBox({
      title: 'Distill Lens: served teacher',
      prompt:
        'openai+ then the server’s OpenAI-compatible base URL, # and the model name; an API key is set with Distill Lens: Set Served Teacher API Key',
      value: parseServedTeacher(current) ? current : 'openai+http://localhost:8000/v1#',
      validateInput: (v) =>
        parseServedTeacher(v)
          ? undefined
          : 'A served teacher looks like openai+http://host:8000/v1#meta-llama/Llama-3.1-70B-Instruct',
    });
    value = value?.trim();
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
