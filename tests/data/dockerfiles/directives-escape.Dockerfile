# syntax=docker/dockerfile:1.7
# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command"]
RUN Write-Host `
    hello `
    world
COPY testfile.txt c:\
RUN dir c:\
ENV PATH="C:\tools;${PATH}"
WORKDIR C:\app
