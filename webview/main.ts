// The side panel's script; the panel itself arrives with the editor issue.
export {};
