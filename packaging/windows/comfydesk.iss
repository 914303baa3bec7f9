; Inno Setup 6 script for comfydesk on Windows (NOT built or tested here: see docs/packaging.md).
; Built by packaging\windows\build_windows.ps1 after PyInstaller made dist\comfydesk\:
;   iscc /DAppVersion=0.1.0 packaging\windows\comfydesk.iss
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6C4E1C4B-3F0E-4C1B-9E55-1F6D2B0C0DE5}
AppName=comfydesk
AppVersion={#AppVersion}
AppPublisher=comfydesk developers
DefaultDirName={autopf}\comfydesk
DefaultGroupName=comfydesk
DisableProgramGroupPage=yes
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\dist
OutputBaseFilename=comfydesk-{#AppVersion}-setup
SetupIconFile=..\..\build\icons\comfydesk.ico
UninstallDisplayIcon={app}\comfydesk.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
; Offered in "Open with" for .json and .png either way; this makes comfydesk the default for .json.
Name: "jsondefault"; Description: "Open .json workflow files with comfydesk by default"; Flags: unchecked

[Files]
Source: "..\..\dist\comfydesk\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\comfydesk"; Filename: "{app}\comfydesk.exe"
Name: "{autodesktop}\comfydesk"; Filename: "{app}\comfydesk.exe"; Tasks: desktopicon

[Registry]
; A ProgID for ComfyUI workflows, and comfydesk in "Open with" for .json, .png and .webp (not the default).
Root: HKA; Subkey: "Software\Classes\comfydesk.workflow"; ValueType: string; ValueData: "ComfyUI workflow"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\comfydesk.workflow\DefaultIcon"; ValueType: string; ValueData: "{app}\comfydesk.exe,0"
Root: HKA; Subkey: "Software\Classes\comfydesk.workflow\shell\open\command"; ValueType: string; ValueData: """{app}\comfydesk.exe"" ""%1"""
Root: HKA; Subkey: "Software\Classes\.json\OpenWithProgids"; ValueType: string; ValueName: "comfydesk.workflow"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.png\OpenWithProgids"; ValueType: string; ValueName: "comfydesk.workflow"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.webp\OpenWithProgids"; ValueType: string; ValueName: "comfydesk.workflow"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.json"; ValueType: string; ValueData: "comfydesk.workflow"; Flags: uninsdeletevalue; Tasks: jsondefault
Root: HKA; Subkey: "Software\Classes\Applications\comfydesk.exe\SupportedTypes"; ValueType: string; ValueName: ".json"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\comfydesk.exe\SupportedTypes"; ValueType: string; ValueName: ".png"; ValueData: ""

[Run]
Filename: "{app}\comfydesk.exe"; Description: "{cm:LaunchProgram,comfydesk}"; Flags: nowait postinstall skipifsilent
