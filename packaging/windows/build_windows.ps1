# Windows build (NOT built or tested here: see docs/packaging.md). In a PowerShell with Python 3.11+ and
# Inno Setup 6 (iscc.exe on PATH), from the repository root:
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build_windows.ps1
# Makes dist\comfydesk\ (PyInstaller one folder) and dist\comfydesk-VERSION-setup.exe (Inno Setup).
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
if (-not (Test-Path .venv)) { python -m venv .venv }
.venv\Scripts\python -m pip install -q -e ".[server,package]"
$version = .venv\Scripts\python -c "from importlib.metadata import version; print(version('comfydesk'))"
$env:QT_QPA_PLATFORM = "offscreen"
.venv\Scripts\python packaging\render_icons.py build\icons
.venv\Scripts\python -c "from PIL import Image; Image.open('build/icons/hicolor/256x256/apps/comfydesk.png').save('build/icons/comfydesk.ico', sizes=[(16,16),(24,24),(32,32),(48,48),(64,64),(128,128),(256,256)])"
.venv\Scripts\pyinstaller --noconfirm --clean --distpath dist --workpath build\pyinstaller packaging\comfydesk.spec
dist\comfydesk\comfydesk.exe --self-test
if ($LASTEXITCODE -ne 0) { throw "self-test failed" }
iscc /DAppVersion=$version packaging\windows\comfydesk.iss
